// StandInTools.java - kafka-topics.sh and kafka-console-consumer.sh for the
// stand-in apache/kafka image (tests/compose/images/kafka/Dockerfile). The
// jars the project caches have no kafka-tools jar, where Kafka 3.9 keeps
// both commands; these do what this project asks of them, with the same
// option names, on Kafka's own Admin and consumer clients:
//
//   topics --bootstrap-server B [--command-config F] --create [--if-not-exists]
//          --topic T [--partitions N] [--replication-factor R]
//   topics --bootstrap-server B [--command-config F] --list
//   topics --bootstrap-server B [--command-config F] --describe --topic T
//   console-consumer --bootstrap-server B [--consumer.config F] --topic T
//          [--from-beginning] [--max-messages N] [--timeout-ms MS]
//          [--property print.key=true] [--property key.separator=S]
//
// --command-config / --consumer.config: client properties (a SASL login,
// TLS settings) loaded first, as Kafka's tools do.
//
// Any other option exits 2 naming it (never silently ignored).
// console-consumer assigns itself every partition (no consumer group) and
// prints one value a line; on --timeout-ms with nothing more to read it
// stops, like Kafka's, and says how many it printed (stderr).

import java.io.FileInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.ExecutionException;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.TopicPartitionInfo;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.serialization.StringDeserializer;

public class StandInTools {
    static String bootstrap, topic;
    static boolean create, ifNotExists, list, describe, fromBeginning, printKey;
    static int partitions = 1;
    static short replication = 1;
    static long maxMessages = Long.MAX_VALUE, timeoutMs = Long.MAX_VALUE;
    static String keySeparator = "\t";
    static String clientConfig;

    static void usage(String why) {
        System.err.println("stand-in kafka tools: " + why);
        System.exit(2);
    }

    static String value(String[] a, int i) {
        if (i >= a.length)
            usage(a[i - 1] + " needs a value");
        return a[i];
    }

    static void parse(String[] a, boolean consumer) {
        for (int i = 1; i < a.length; i++) {
            String o = a[i];
            switch (o) {
            case "--bootstrap-server": bootstrap = value(a, ++i); break;
            case "--command-config": if (consumer) usage(o); clientConfig = value(a, ++i); break;
            case "--consumer.config": if (!consumer) usage(o); clientConfig = value(a, ++i); break;
            case "--topic": topic = value(a, ++i); break;
            case "--create": if (consumer) usage(o); create = true; break;
            case "--if-not-exists": if (consumer) usage(o); ifNotExists = true; break;
            case "--list": if (consumer) usage(o); list = true; break;
            case "--describe": if (consumer) usage(o); describe = true; break;
            case "--partitions": partitions = Integer.parseInt(value(a, ++i)); break;
            case "--replication-factor": replication = Short.parseShort(value(a, ++i)); break;
            case "--from-beginning": fromBeginning = true; break;
            case "--max-messages": maxMessages = Long.parseLong(value(a, ++i)); break;
            case "--timeout-ms": timeoutMs = Long.parseLong(value(a, ++i)); break;
            case "--property": {
                String p = value(a, ++i);
                if (p.equals("print.key=true"))
                    printKey = true;
                else if (p.equals("print.key=false"))
                    printKey = false;
                else if (p.startsWith("key.separator="))
                    keySeparator = p.substring("key.separator=".length());
                else
                    usage("unsupported --property " + p);
                break;
            }
            default: usage("unsupported option " + o);
            }
        }
        if (bootstrap == null)
            usage("--bootstrap-server is required");
    }

    /** The --command-config / --consumer.config properties, or none. */
    static Properties clientProperties() {
        Properties p = new Properties();
        if (clientConfig != null) {
            try (InputStream in = new FileInputStream(clientConfig)) {
                p.load(in);
            } catch (IOException e) {
                usage(clientConfig + ": " + e.getMessage());
            }
        }
        return p;
    }

    static int topics() throws Exception {
        Properties p = clientProperties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        try (Admin admin = Admin.create(p)) {
            if (create) {
                if (topic == null)
                    usage("--create needs --topic");
                try {
                    admin.createTopics(List.of(new NewTopic(topic, partitions, replication))).all().get();
                    System.out.println("Created topic " + topic + ".");
                } catch (ExecutionException e) {
                    if (!(e.getCause() instanceof TopicExistsException) || !ifNotExists)
                        throw e;
                }
            } else if (list) {
                for (String t : new TreeSet<>(admin.listTopics().names().get()))
                    System.out.println(t);
            } else if (describe) {
                if (topic == null)
                    usage("--describe needs --topic");
                TopicDescription d = admin.describeTopics(List.of(topic)).allTopicNames().get().get(topic);
                System.out.println("Topic: " + topic + "\tPartitionCount: " + d.partitions().size());
                for (TopicPartitionInfo i : d.partitions())
                    System.out.println("\tTopic: " + topic + "\tPartition: " + i.partition() + "\tLeader: "
                                       + (i.leader() == null ? "none" : i.leader().id()));
            } else {
                usage("one of --create, --list, --describe");
            }
        }
        return 0;
    }

    static int consume() {
        if (topic == null)
            usage("--topic is required");
        Properties p = clientProperties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        long printed = 0;
        try (KafkaConsumer<String, String> c =
                 new KafkaConsumer<>(p, new StringDeserializer(), new StringDeserializer())) {
            List<TopicPartition> parts = new ArrayList<>();
            for (PartitionInfo i : c.partitionsFor(topic, Duration.ofSeconds(30)))
                parts.add(new TopicPartition(topic, i.partition()));
            c.assign(parts);
            if (fromBeginning)
                c.seekToBeginning(parts);
            else
                c.seekToEnd(parts);
            long idleSince = System.currentTimeMillis();
            while (printed < maxMessages) {
                boolean got = false;
                for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(200))) {
                    got = true;
                    System.out.println(printKey ? r.key() + keySeparator + r.value() : r.value());
                    if (++printed >= maxMessages)
                        break;
                }
                long now = System.currentTimeMillis();
                if (got)
                    idleSince = now;
                else if (timeoutMs != Long.MAX_VALUE && now - idleSince >= timeoutMs)
                    break;
            }
        }
        System.out.flush();
        System.err.println("Processed a total of " + printed + " messages");
        return 0;
    }

    public static void main(String[] a) throws Exception {
        if (a.length == 0)
            usage("topics|console-consumer [options]");
        boolean consumer = a[0].equals("console-consumer");
        if (!consumer && !a[0].equals("topics"))
            usage("unknown tool " + a[0]);
        parse(a, consumer);
        try {
            System.exit(consumer ? consume() : topics());
        } catch (ExecutionException e) {
            System.err.println("Error: " + e.getCause());
            System.exit(1);
        }
    }
}
