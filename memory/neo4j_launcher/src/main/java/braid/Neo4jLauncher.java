package braid;

import java.nio.file.Path;
import java.util.Map;
import org.neo4j.configuration.GraphDatabaseSettings;
import org.neo4j.configuration.connectors.BoltConnector;
import org.neo4j.configuration.helpers.SocketAddress;
import org.neo4j.dbms.api.DatabaseManagementService;
import org.neo4j.dbms.api.DatabaseManagementServiceBuilder;

/**
 * Neo4j Community, embedded, with Bolt on 127.0.0.1 and authentication on.
 *
 * <p>Usage: {@code Neo4jLauncher DATA_DIR PORT PASSWORD}. Prints {@code READY bolt://127.0.0.1:PORT} once the
 * server accepts connections, and shuts the database down cleanly when standard input closes or the process
 * is terminated.
 */
public final class Neo4jLauncher {
  private Neo4jLauncher() {}

  public static void main(String[] args) throws Exception {
    if (args.length != 3) {
      System.err.println("usage: Neo4jLauncher DATA_DIR PORT PASSWORD");
      System.exit(2);
    }
    Path data = Path.of(args[0]).toAbsolutePath();
    int port = Integer.parseInt(args[1]);
    DatabaseManagementService dbms =
        new DatabaseManagementServiceBuilder(data)
            .setConfig(BoltConnector.enabled, true)
            .setConfig(BoltConnector.listen_address, new SocketAddress("127.0.0.1", port))
            .setConfig(GraphDatabaseSettings.auth_enabled, true)
            .build();
    Runtime.getRuntime().addShutdownHook(new Thread(dbms::shutdown));
    dbms.database("system")
        .executeTransactionally(
            "ALTER USER neo4j SET PASSWORD $password CHANGE NOT REQUIRED", Map.of("password", args[2]));
    System.out.println("READY bolt://127.0.0.1:" + port);
    System.out.flush();
    while (System.in.read() != -1) {
      // the parent holds our stdin open; when it closes, shut down
    }
    System.exit(0);
  }
}
