// Waits for a Kafka broker to answer and makes sure the sipdrain topics exist.
//
// Run as a Java 11+ single-file program with the broker's jars on the
// classpath (kafka-clients provides the AdminClient):
//
//   java -cp "$CP" tests/scripts/KafkaAdmin.java [--config FILE] [--scram DIR] \
//        <bootstrap> <timeout_s> topic...
//
// --config FILE: Java client properties added to the admin client's (the
//   SASL login of a super user: security.protocol, sasl.mechanism,
//   sasl.jaas.config).
// --scram DIR: after step 1, sets the SCRAM-SHA-512 credential of every user
//   named by a file in DIR to the password the file holds (created or
//   replaced: a changed file rotates the password). Files starting with '.'
//   and the names given by --skip (comma-separated) are left out.
//
// 1. retries describeCluster until the broker answers (and has a controller);
// 2. creates the topics that are missing (6 partitions, the brokers'
//    default.replication.factor: 1 on kafka-up.sh's single node, 3 on its
//    --cluster);
//    topics that already exist are fine;
// 3. waits until every topic is visible with 6 partitions, each with a leader.
// With --delete-prefixed as the first topic, the other arguments are name
// prefixes instead: after step 1 it deletes every topic whose name starts
// with one of them (the runs' own topics, e.g. "t." "demo." "bench.", so a
// long-lived local broker does not pile up the partitions of every run), and
// skips steps 2 and 3; the ACLs whose resource names start with one of them
// go too. Used by tests/scripts/kafka-down.sh.
// With --describe as the first topic, the others are described instead:
// brokers and their racks, the KRaft quorum's leader, each partition's
// leader, replicas and ISR, each topic's min.insync.replicas (stdout, one
// fact a line; see describe()). Used by tests/e2e/ha-stores.sh.
// One summary line goes to stderr. Exit 0 on success, 1 on timeout/failure
// (with the reason), 2 on bad usage. Client logging: as -Dlog4j.configuration
// says, else errors only, to stderr. Used by tests/scripts/kafka-up.sh.

import java.io.FileInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashSet;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.CreateTopicsResult;
import org.apache.kafka.clients.admin.DeleteTopicsResult;
import org.apache.kafka.clients.admin.DescribeClusterResult;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.ScramCredentialInfo;
import org.apache.kafka.clients.admin.ScramMechanism;
import org.apache.kafka.clients.admin.UserScramCredentialAlteration;
import org.apache.kafka.clients.admin.UserScramCredentialUpsertion;
import org.apache.kafka.common.acl.AclBinding;
import org.apache.kafka.common.acl.AclBindingFilter;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.TopicPartitionInfo;
import org.apache.kafka.common.errors.TopicExistsException;

public class KafkaAdmin {
    static final int PARTITIONS = 6;
    static final long POLL_MS = 300;

    static long deadlineNanos;

    /** Milliseconds left before the overall deadline, capped per request. */
    static long slice() {
        long left = TimeUnit.NANOSECONDS.toMillis(deadlineNanos - System.nanoTime());
        return Math.max(1, Math.min(left, 5000));
    }

    static boolean expired() {
        return System.nanoTime() - deadlineNanos >= 0;
    }

    static String reason(Throwable t) {
        Throwable c = (t instanceof ExecutionException && t.getCause() != null) ? t.getCause() : t;
        String m = c.getMessage();
        return c.getClass().getSimpleName() + ": " + (m == null ? "no response" : m);
    }

    static void fail(String msg) {
        System.err.println("kafka-admin: " + msg);
        System.exit(1);
    }

    static void sleep() {
        try {
            Thread.sleep(POLL_MS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            fail("interrupted");
        }
    }

    /**
     * Prints where things are, one fact a line on stdout (tests and the
     * runbook grep them): "broker ID RACK", "quorum-leader ID", then per
     * partition "partition TOPIC NUM leader=ID replicas=ID,.. isr=ID,.."
     * (leader -1: none) and per topic "min.insync.replicas TOPIC N".
     */
    static void describe(Admin admin, Set<String> args) {
        List<String> named = new ArrayList<>(args);
        named.remove("--describe");
        String last = "no answer yet";
        while (true) {
            if (expired()) fail("timeout describing (" + last + ")");
            try {
                StringBuilder out = new StringBuilder();
                // Internal topics named but absent (__consumer_offsets before any group) are skipped.
                Set<String> exist = topicsWithInternal(admin);
                List<String> topics = new ArrayList<>(named);
                topics.removeIf(t -> t.startsWith("__") && !exist.contains(t));
                Collection<Node> nodes = admin.describeCluster().nodes().get(slice(), TimeUnit.MILLISECONDS);
                for (Node n : nodes) out.append("broker ").append(n.id()).append(' ').append(n.hasRack() ? n.rack() : "-").append('\n');
                out.append("quorum-leader ")
                    .append(admin.describeMetadataQuorum().quorumInfo().get(slice(), TimeUnit.MILLISECONDS).leaderId())
                    .append('\n');
                Map<String, TopicDescription> d =
                    admin.describeTopics(topics).allTopicNames().get(slice(), TimeUnit.MILLISECONDS);
                List<org.apache.kafka.common.config.ConfigResource> res = new ArrayList<>();
                for (String t : topics) {
                    for (TopicPartitionInfo tp : d.get(t).partitions()) {
                        out.append("partition ").append(t).append(' ').append(tp.partition())
                            .append(" leader=").append(tp.leader() == null || tp.leader().isEmpty() ? -1 : tp.leader().id())
                            .append(" replicas=").append(ids(tp.replicas())).append(" isr=").append(ids(tp.isr())).append('\n');
                    }
                    res.add(new org.apache.kafka.common.config.ConfigResource(
                        org.apache.kafka.common.config.ConfigResource.Type.TOPIC, t));
                }
                var configs = admin.describeConfigs(res).all().get(slice(), TimeUnit.MILLISECONDS);
                for (var e : configs.entrySet()) {
                    var entry = e.getValue().get("min.insync.replicas");
                    out.append("min.insync.replicas ").append(e.getKey().name()).append(' ')
                        .append(entry == null ? "?" : entry.value()).append('\n');
                }
                System.out.print(out);
                System.out.flush();
                return;
            } catch (Exception e) {
                last = reason(e);
            }
            sleep();
        }
    }

    /** Every topic name, Kafka's own (__consumer_offsets) included. */
    static Set<String> topicsWithInternal(Admin admin) throws Exception {
        return admin.listTopics(new org.apache.kafka.clients.admin.ListTopicsOptions().listInternal(true))
            .names().get(slice(), TimeUnit.MILLISECONDS);
    }

    static String ids(List<Node> nodes) {
        StringBuilder b = new StringBuilder();
        for (Node n : nodes) b.append(b.length() == 0 ? "" : ",").append(n.id());
        return b.toString();
    }

    /** Deletes the topics whose names start with one of the prefixes. */
    static void deletePrefixed(Admin admin, Set<String> args, long t0) {
        List<String> prefixes = new ArrayList<>(args);
        prefixes.remove("--delete-prefixed");
        if (prefixes.isEmpty() || prefixes.contains("")) fail("--delete-prefixed needs non-empty prefixes");
        String last = "no answer yet";
        while (true) {
            if (expired()) fail("timeout deleting topics (" + last + ")");
            try {
                List<String> doomed = new ArrayList<>();
                for (String t : admin.listTopics().names().get(slice(), TimeUnit.MILLISECONDS)) {
                    for (String prefix : prefixes) {
                        if (t.startsWith(prefix)) {
                            doomed.add(t);
                            break;
                        }
                    }
                }
                if (!doomed.isEmpty()) {
                    DeleteTopicsResult dr = admin.deleteTopics(doomed);
                    dr.all().get(Math.max(slice(), 30000), TimeUnit.MILLISECONDS);
                }
                List<AclBindingFilter> acls = new ArrayList<>();
                for (AclBinding b : admin.describeAcls(AclBindingFilter.ANY).values().get(slice(),
                         TimeUnit.MILLISECONDS)) {
                    for (String prefix : prefixes) {
                        if (b.pattern().name().startsWith(prefix)) {
                            acls.add(b.toFilter());
                            break;
                        }
                    }
                }
                if (!acls.isEmpty())
                    admin.deleteAcls(acls).all().get(Math.max(slice(), 30000), TimeUnit.MILLISECONDS);
                System.err.printf("kafka-admin: deleted %d topics and %d ACLs named %s* (%.1f s)%n",
                    doomed.size(), acls.size(), String.join("* / ", prefixes), (System.nanoTime() - t0) / 1e9);
                return;
            } catch (Exception e) {
                last = reason(e);
                sleep();
            }
        }
    }

    /** Sets the SCRAM-SHA-512 credential of each user file in dir. */
    static void upsertScram(Admin admin, String dir, Set<String> skip) {
        List<UserScramCredentialAlteration> ups = new ArrayList<>();
        try (DirectoryStream<Path> ds = Files.newDirectoryStream(Paths.get(dir))) {
            for (Path f : ds) {
                String user = f.getFileName().toString();
                if (user.startsWith(".") || skip.contains(user)) continue;
                String pw = new String(Files.readAllBytes(f), StandardCharsets.UTF_8).trim();
                if (pw.isEmpty()) fail("empty password file " + f);
                ups.add(new UserScramCredentialUpsertion(user,
                    new ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192), pw));
            }
        } catch (IOException e) {
            fail("--scram " + dir + ": " + reason(e));
        }
        String last = "no answer yet";
        while (true) {
            if (expired()) fail("timeout setting SCRAM credentials (" + last + ")");
            try {
                admin.alterUserScramCredentials(ups).all().get(slice(), TimeUnit.MILLISECONDS);
                System.err.printf("kafka-admin: SCRAM-SHA-512 credentials set for %d users%n", ups.size());
                return;
            } catch (Exception e) {
                last = reason(e);
                sleep();
            }
        }
    }

    public static void main(String[] args) {
        String config = null, scramDir = null;
        Set<String> skip = new HashSet<>();
        int a = 0;
        for (; a + 1 < args.length && args[a].startsWith("--"); a += 2) {
            if (args[a].equals("--config")) config = args[a + 1];
            else if (args[a].equals("--scram")) scramDir = args[a + 1];
            else if (args[a].equals("--skip")) skip.addAll(List.of(args[a + 1].split(",")));
            else break;
        }
        args = java.util.Arrays.copyOfRange(args, a, args.length);
        if (args.length < 2) {
            System.err.println("usage: KafkaAdmin.java <bootstrap> <timeout_s> [topic...]");
            System.exit(2);
        }
        String bootstrap = args[0];
        long timeoutS;
        try {
            timeoutS = Long.parseLong(args[1]);
        } catch (NumberFormatException e) {
            System.err.println("kafka-admin: bad timeout '" + args[1] + "'");
            System.exit(2);
            return;
        }
        Set<String> topics = new LinkedHashSet<>(List.of(args).subList(2, args.length));
        if (System.getProperty("log4j.configuration") == null) {
            // No log4j config given: client errors only, to stderr (instead of
            // log4j's "no appenders" warnings).
            org.apache.log4j.Logger root = org.apache.log4j.Logger.getRootLogger();
            root.setLevel(org.apache.log4j.Level.ERROR);
            root.addAppender(new org.apache.log4j.ConsoleAppender(
                new org.apache.log4j.PatternLayout("[%d] %p %m (%c)%n"), "System.err"));
        }
        long t0 = System.nanoTime();
        deadlineNanos = t0 + TimeUnit.SECONDS.toNanos(timeoutS);

        Properties p = new Properties();
        if (config != null) {
            try (InputStream in = new FileInputStream(config)) {
                p.load(in);
            } catch (IOException e) {
                fail("--config " + config + ": " + reason(e));
            }
        }
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(AdminClientConfig.CLIENT_ID_CONFIG, "sipdrain-kafka-admin");
        p.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "5000");
        p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "5000");
        p.put(AdminClientConfig.RETRY_BACKOFF_MS_CONFIG, "200");
        p.put(AdminClientConfig.RECONNECT_BACKOFF_MS_CONFIG, "100");
        p.put(AdminClientConfig.RECONNECT_BACKOFF_MAX_MS_CONFIG, "1000");

        try (Admin admin = Admin.create(p)) {
            // 1. Wait until the broker answers metadata requests.
            String clusterId = null;
            String last = "no answer yet";
            while (clusterId == null) {
                if (expired()) fail("timeout after " + timeoutS + " s waiting for " + bootstrap + " (" + last + ")");
                try {
                    DescribeClusterResult dc = admin.describeCluster();
                    Collection<Node> nodes = dc.nodes().get(slice(), TimeUnit.MILLISECONDS);
                    Node controller = dc.controller().get(slice(), TimeUnit.MILLISECONDS);
                    if (nodes.isEmpty() || controller == null || controller.isEmpty()) {
                        last = "no broker/controller registered yet";
                    } else {
                        clusterId = dc.clusterId().get(slice(), TimeUnit.MILLISECONDS);
                    }
                } catch (Exception e) {
                    last = reason(e);
                }
                if (clusterId == null) sleep();
            }

            if (scramDir != null) upsertScram(admin, scramDir, skip);

            if (topics.contains("--describe")) {
                describe(admin, topics);
                System.exit(0);
            }
            if (topics.contains("--delete-prefixed")) {
                deletePrefixed(admin, topics, t0);
                System.exit(0);
            }

            // 2. Create what is missing; racing creators (TopicExists) are fine.
            int created = 0, replication = 0;
            Set<String> existing = null;
            while (existing == null) {
                if (expired()) fail("timeout after " + timeoutS + " s listing topics (" + last + ")");
                try {
                    existing = new HashSet<>(admin.listTopics().names().get(slice(), TimeUnit.MILLISECONDS));
                } catch (Exception e) {
                    last = reason(e);
                    sleep();
                }
            }
            List<NewTopic> missing = new ArrayList<>();
            for (String t : topics) {
                if (!existing.contains(t)) missing.add(new NewTopic(t, Optional.of(PARTITIONS), Optional.empty()));
            }
            while (!missing.isEmpty()) {
                if (expired()) fail("timeout after " + timeoutS + " s creating topics (" + last + ")");
                CreateTopicsResult cr = admin.createTopics(missing);
                List<NewTopic> retry = new ArrayList<>();
                for (NewTopic nt : missing) {
                    try {
                        cr.values().get(nt.name()).get(slice(), TimeUnit.MILLISECONDS);
                        created++;
                    } catch (ExecutionException e) {
                        if (!(e.getCause() instanceof TopicExistsException)) {
                            last = nt.name() + ": " + reason(e);
                            retry.add(nt);
                        }
                    } catch (Exception e) {
                        last = nt.name() + ": " + reason(e);
                        retry.add(nt);
                    }
                }
                missing = retry;
                if (!missing.isEmpty()) sleep();
            }

            // 3. Wait until every topic is described with all partitions led.
            if (!topics.isEmpty()) {
                while (true) {
                    if (expired()) fail("timeout after " + timeoutS + " s waiting for topic leaders (" + last + ")");
                    try {
                        Map<String, TopicDescription> d =
                            admin.describeTopics(topics).allTopicNames().get(slice(), TimeUnit.MILLISECONDS);
                        String problem = null;
                        for (String t : topics) {
                            TopicDescription td = d.get(t);
                            if (td == null) {
                                problem = t + ": not described";
                                break;
                            }
                            List<TopicPartitionInfo> parts = td.partitions();
                            if (parts.size() != PARTITIONS) {
                                // Not transient: an existing topic with another layout.
                                fail("topic " + t + " has " + parts.size() + " partitions, expected " + PARTITIONS
                                    + " (delete it or purge the broker data)");
                            }
                            for (TopicPartitionInfo tp : parts) {
                                replication = tp.replicas().size();
                                if (tp.leader() == null || tp.leader().isEmpty()) {
                                    problem = t + "-" + tp.partition() + ": no leader yet";
                                    break;
                                }
                            }
                            if (problem != null) break;
                        }
                        if (problem == null) break;
                        last = problem;
                    } catch (Exception e) {
                        last = reason(e);
                    }
                    sleep();
                }
            }

            double secs = (System.nanoTime() - t0) / 1e9;
            System.err.printf("kafka-admin: cluster %s at %s ready; %d topics ok (%d created, %d existed), "
                    + "%d partitions each, replication %d, leaders elected (%.1f s)%n",
                clusterId, bootstrap, topics.size(), created, topics.size() - created, PARTITIONS, replication,
                secs);
        } catch (Exception e) {
            fail(reason(e));
        }
        System.exit(0);
    }
}
