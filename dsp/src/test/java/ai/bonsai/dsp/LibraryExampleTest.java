package ai.bonsai.dsp;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import javax.tools.JavaCompiler;
import javax.tools.ToolProvider;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.lang.reflect.Method;
import java.net.URL;
import java.net.URLClassLoader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.*;

/** The README's library example compiles against the published API and runs: the README cannot go stale. */
class LibraryExampleTest {

    static Path readme() {
        for (Path p = Path.of("").toAbsolutePath(); p != null; p = p.getParent()) {
            if (Files.isRegularFile(p.resolve("README.md")) && Files.isDirectory(p.resolve("engine"))) return p.resolve("README.md");
        }
        throw new IllegalStateException("README.md not found above " + Path.of("").toAbsolutePath());
    }

    @Test
    void readmeExampleCompilesAndTrains(@TempDir Path tmp) throws Exception {
        String md = Files.readString(readme());
        Matcher m = Pattern.compile("<!-- example:start -->\\s*```java\\n(.*?)```\\s*<!-- example:end -->", Pattern.DOTALL).matcher(md);
        assertTrue(m.find(), "README.md has no example between the example markers");
        String code = m.group(1);
        Matcher cls = Pattern.compile("public class (\\w+)").matcher(code);
        assertTrue(cls.find(), "the example declares no public class");
        Path src = tmp.resolve(cls.group(1) + ".java");
        Files.writeString(src, code);

        JavaCompiler javac = ToolProvider.getSystemJavaCompiler();
        ByteArrayOutputStream diag = new ByteArrayOutputStream();
        int rc = javac.run(null, diag, diag, "--release", "17", "-cp", System.getProperty("java.class.path"),
                "-d", tmp.toString(), src.toString());
        assertEquals(0, rc, "the README example does not compile:\n" + diag.toString(StandardCharsets.UTF_8));

        PrintStream old = System.out;
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        try (URLClassLoader loader = new URLClassLoader(new URL[] {tmp.toUri().toURL()}, getClass().getClassLoader())) {
            System.setOut(new PrintStream(out, true, StandardCharsets.UTF_8));
            Method main = loader.loadClass(cls.group(1)).getMethod("main", String[].class);
            main.invoke(null, (Object) new String[0]);
        } finally {
            System.setOut(old);
        }
        String printed = out.toString(StandardCharsets.UTF_8);
        Matcher acc = Pattern.compile("held-out accuracy ([0-9.]+)%").matcher(printed);
        assertTrue(acc.find(), printed);
        // Ten classes: chance is 10 %. Three short epochs on the synthetic data must clearly beat it.
        assertTrue(Double.parseDouble(acc.group(1)) > 20, printed);
    }
}
