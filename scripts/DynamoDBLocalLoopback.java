// Starts Amazon's DynamoDB Local listening on 127.0.0.1 only.
//
// DynamoDBLocal.jar's own main (ServerRunner) has no option for the listen
// address: its Jetty server binds every interface (*:PORT), which would put
// an unauthenticated database on the machine's network for the length of a
// test run. This does what that main does (parse the same command line,
// build the server) and sets the Jetty connector's host to 127.0.0.1 before
// starting it. No telemetry: ServerRunner's main is what configures it.
//
// Compiled by scripts/dynamodb_local.sh against DynamoDBLocal.jar (javac) and
// run with that jar on the class path; its Class-Path manifest entry brings
// in DynamoDBLocal_lib/*.jar. Arguments are DynamoDBLocal.jar's own
// (-inMemory, -port N, ...).

import java.lang.reflect.Field;
import org.eclipse.jetty.server.Connector;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import software.amazon.dynamodb.services.local.main.ServerRunner;
import software.amazon.dynamodb.services.local.server.DynamoDBProxyServer;

public final class DynamoDBLocalLoopback {
    public static void main(String[] args) throws Exception {
        String host = System.getProperty("dynamodb.local.host", "127.0.0.1");
        DynamoDBProxyServer proxy = ServerRunner.createServerFromCommandLineArgs(args);
        // DynamoDBProxyServer keeps its Jetty server in a private field.
        Field field = DynamoDBProxyServer.class.getDeclaredField("server");
        field.setAccessible(true);
        Server server = (Server) field.get(proxy);
        Connector[] connectors = server.getConnectors();
        if (connectors.length == 0) {
            throw new IllegalStateException("DynamoDB Local's Jetty server has no connector");
        }
        for (Connector connector : connectors) {
            ((ServerConnector) connector).setHost(host);
        }
        proxy.start();
        System.out.println("DynamoDB Local listening on " + host);
        proxy.join();
    }
}
