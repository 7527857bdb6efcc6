// Creates or updates SCRAM users through the Kafka Admin API.
//
// Usage: java -cp 'KAFKA_LIB/*' ScramUsers.java BOOTSTRAP ITERATIONS < users
// Each line of stdin is `MECHANISM USERNAME PASSWORD`, MECHANISM being SCRAM-SHA-256 or
// SCRAM-SHA-512. Passwords come on stdin so that they never show in the process list.
// tests/env/kafka_security.py runs it after each broker start; an upsert is idempotent.

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.ScramCredentialInfo;
import org.apache.kafka.clients.admin.ScramMechanism;
import org.apache.kafka.clients.admin.UserScramCredentialAlteration;
import org.apache.kafka.clients.admin.UserScramCredentialUpsertion;

public class ScramUsers {
    public static void main(String[] args) throws Exception {
        if (args.length != 2) {
            System.err.println("usage: ScramUsers BOOTSTRAP ITERATIONS < users");
            System.exit(2);
        }
        int iterations = Integer.parseInt(args[1]);
        List<UserScramCredentialAlteration> alterations = new ArrayList<>();
        BufferedReader input =
                new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        String line;
        while ((line = input.readLine()) != null) {
            if (line.isBlank()) {
                continue;
            }
            String[] parts = line.split(" ", 3);
            if (parts.length != 3) {
                System.err.println("each line must be: MECHANISM USERNAME PASSWORD");
                System.exit(2);
            }
            ScramMechanism mechanism = ScramMechanism.fromMechanismName(parts[0]);
            if (mechanism == ScramMechanism.UNKNOWN) {
                System.err.println("unknown SCRAM mechanism " + parts[0]);
                System.exit(2);
            }
            alterations.add(
                    new UserScramCredentialUpsertion(
                            parts[1], new ScramCredentialInfo(mechanism, iterations), parts[2]));
        }

        Properties config = new Properties();
        config.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
        config.put(AdminClientConfig.CLIENT_ID_CONFIG, "jobrunner-test-env");
        try (Admin admin = Admin.create(config)) {
            admin.alterUserScramCredentials(alterations).all().get(60, TimeUnit.SECONDS);
        }
    }
}
