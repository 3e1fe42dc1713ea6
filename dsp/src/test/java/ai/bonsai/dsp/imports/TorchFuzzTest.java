package ai.bonsai.dsp.imports;

import ai.bonsai.dsp.testing.PublishedModels.Model;
import ai.bonsai.io.torch.TorchArchive;
import ai.bonsai.io.torch.TorchFormatException;
import ai.bonsai.io.torch.TorchLimits;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Enumeration;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.zip.ZipEntry;
import java.util.zip.ZipFile;

import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * Damaged archives, seeded: every input must either import or end in a {@link TorchFormatException} within
 * the per-case timeout; any other exception or Error (StackOverflowError, OutOfMemoryError, ...) or a hang
 * fails the test. Covers truncation at every prefix length class, byte flips in the zip headers and
 * anywhere (caught by the CRC), flips inside data.pkl, constants.pkl, storages and code re-zipped with valid
 * CRCs (so the unpickler, the storage checks and the code parser see them), and oversized declared lengths.
 */
class TorchFuzzTest {
    private static final long CASE_TIMEOUT_MS = 5_000;
    private static ExecutorService pool;
    private static int cases, imported;

    @BeforeAll
    static void start() { pool = Executors.newSingleThreadExecutor(r -> { Thread t = new Thread(r, "fuzz-case"); t.setDaemon(true); return t; }); }

    @AfterAll
    static void stop() { pool.shutdownNow(); }

    /** Runs one case with the timeout; only success or TorchFormatException are acceptable. */
    private static void check(byte[] archive, String label) {
        cases++;
        Future<PackedResNet> f = pool.submit(() -> TorchPackedImporter.read(TorchArchive.read(archive, "fuzz.pt", TorchLimits.DEFAULT)));
        try {
            f.get(CASE_TIMEOUT_MS, TimeUnit.MILLISECONDS);
            imported++;
        } catch (ExecutionException e) {
            Throwable c = e.getCause();
            if (!(c instanceof TorchFormatException)) {
                AssertionError err = new AssertionError(label + ": ended in " + c + " instead of a TorchFormatException", c);
                throw err;
            }
            if (c.getMessage() == null || c.getMessage().isBlank()) fail(label + ": TorchFormatException without a message");
        } catch (TimeoutException e) {
            f.cancel(true);
            fail(label + ": no result within " + CASE_TIMEOUT_MS + " ms");
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            fail(label + ": interrupted");
        }
    }

    @Test
    void damagedArchivesEndInTorchFormatException() throws Exception {
        long start = System.nanoTime();
        cases = 0;
        imported = 0;
        SyntheticPackedModel model = new SyntheticPackedModel(7);
        byte[] zip = model.bytes();
        check(zip, "the intact archive");
        assertTrue(imported == 1, "the intact synthetic archive must import");
        Random rnd = new Random(20240601);

        // Truncation: every short prefix, every length near the end, and evenly spaced lengths between.
        for (int n = 0; n < zip.length; n += (n < 64 || n > zip.length - 64) ? 1 : Math.max(1, zip.length / 400)) {
            check(java.util.Arrays.copyOf(zip, n), "prefix of " + n + " bytes");
        }
        // Raw flips anywhere (stored entries are caught by their CRC) and in the zip headers.
        List<Integer> headers = headerOffsets(zip);
        for (int i = 0; i < 1000; i++) {
            byte[] b = zip.clone();
            int flips = 1 + rnd.nextInt(3);
            for (int k = 0; k < flips; k++) {
                int p = i % 2 == 0 ? rnd.nextInt(b.length) : Math.min(b.length - 1, headers.get(rnd.nextInt(headers.size())) + rnd.nextInt(46));
                b[p] ^= (byte) (1 << rnd.nextInt(8));
            }
            check(b, "raw flip case " + i);
        }
        // Entry contents with valid CRCs: pickles, storages, code.
        mutateEntries(model.entries, rnd, 1500, "synthetic");
        // Oversized declared lengths in the zip: entry count, sizes and offsets set to huge values.
        int eocd = lastSig(zip, 0x06054b50);
        for (int field : new int[] {8, 10, 12, 16}) {
            byte[] b = zip.clone();
            for (int k = 0; k < (field >= 12 ? 4 : 2); k++) b[eocd + field + k] = (byte) 0xFF;
            check(b, "end record field +" + field + " = max");
        }
        for (int i = 0; i < 200; i++) {
            byte[] b = zip.clone();
            int cd = headers.get(rnd.nextInt(headers.size()));
            int field = new int[] {20, 24, 28, 30, 32, 42}[rnd.nextInt(6)];
            int len = field >= 28 && field <= 32 ? 2 : 4;
            for (int k = 0; k < len && cd + field + k < b.length; k++) b[cd + field + k] = (byte) (rnd.nextBoolean() ? 0xFF : rnd.nextInt(256));
            check(b, "header length field case " + i);
        }
        // Oversized lengths inside data.pkl: every BINUNICODE length, one at a time.
        byte[] pkl = model.entries.get("fake_model/data.pkl");
        int patched = 0;
        for (int p = 0; p + 5 < pkl.length && patched < 300; p++) {
            if (pkl[p] != 'X') continue;
            Map<String, byte[]> e = new LinkedHashMap<>(model.entries);
            byte[] b = pkl.clone();
            int v = patched % 3 == 0 ? 0x7FFFFFFF : patched % 3 == 1 ? 0xFFFFFFFF : 1 << 20;
            for (int k = 0; k < 4; k++) b[p + 1 + k] = (byte) (v >>> (8 * k));
            e.put("fake_model/data.pkl", b);
            check(TorchArchiveWriter.zip(e), "data.pkl length at " + p + " = " + Integer.toUnsignedString(v));
            patched++;
        }
        double secs = (System.nanoTime() - start) / 1e9;
        System.out.printf("fuzz: %d cases, %d imported despite the damage, %.1f s%n", cases, imported, secs);
        assertTrue(cases > 3000, "ran " + cases + " cases");
        assertTrue(secs < 30, "fuzzing took " + secs + " s");
    }

    /**
     * Each of the six published archives (when ../shared is present): raw flips, prefixes, entry mutations
     * (pickle opcodes, storages, code bytes) and line-level edits of the TorchScript code, which keep the code
     * parseable text but change the data flow the importer follows.
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource("ai.bonsai.dsp.testing.PublishedModels#all")
    void damagedPublishedArchivesEndInTorchFormatException(Model m) throws Exception {
        Path file = m.file();
        long start = System.nanoTime();
        Random rnd = new Random(m.name().hashCode());
        Map<String, byte[]> entries = readZip(file);
        byte[] raw = java.nio.file.Files.readAllBytes(file);
        check(raw, m + " intact");
        for (int i = 0; i < 10; i++) {
            byte[] b = raw.clone();
            b[rnd.nextInt(b.length)] ^= (byte) (1 << rnd.nextInt(8));
            check(b, m + " raw flip " + i);
        }
        for (int n : new int[] {0, 1, 21, 22, 100, raw.length / 2, raw.length - 100, raw.length - 22, raw.length - 1}) {
            check(java.util.Arrays.copyOf(raw, n), m + " prefix " + n);
        }
        mutateEntries(entries, rnd, 24, m.name());
        mutateCodeLines(entries, rnd, 40, m.name());
        double secs = (System.nanoTime() - start) / 1e9;
        System.out.printf("fuzz %s: %.1f s%n", m, secs);
        assertTrue(secs < 40, m + ": fuzzing took " + secs + " s");
    }

    /** Deletes, duplicates or swaps lines of a block's code, or renames one identifier on a line to another of the file's. */
    private static void mutateCodeLines(Map<String, byte[]> entries, Random rnd, int count, String what) {
        List<String> code = entries.keySet().stream().filter(n -> n.contains("/code/") && n.endsWith(".py")).toList();
        for (int i = 0; i < count; i++) {
            String name = code.get(rnd.nextInt(code.size()));
            List<String> lines = new ArrayList<>(List.of(new String(entries.get(name), java.nio.charset.StandardCharsets.UTF_8).split("\n", -1)));
            int a = rnd.nextInt(lines.size()), b = rnd.nextInt(lines.size());
            switch (i % 4) {
                case 0 -> lines.remove(a);
                case 1 -> lines.add(a, lines.get(b));
                case 2 -> { String t = lines.get(a); lines.set(a, lines.get(b)); lines.set(b, t); }
                default -> {
                    List<String> ids = new ArrayList<>();
                    java.util.regex.Matcher mt = java.util.regex.Pattern.compile("[A-Za-z_][A-Za-z_0-9]*").matcher(String.join("\n", lines));
                    while (mt.find()) ids.add(mt.group());
                    java.util.regex.Matcher onLine = java.util.regex.Pattern.compile("[A-Za-z_][A-Za-z_0-9]*").matcher(lines.get(a));
                    if (!ids.isEmpty() && onLine.find()) {
                        String line = lines.get(a);
                        lines.set(a, line.substring(0, onLine.start()) + ids.get(rnd.nextInt(ids.size())) + line.substring(onLine.end()));
                    }
                }
            }
            Map<String, byte[]> e = new LinkedHashMap<>(entries);
            e.put(name, String.join("\n", lines).getBytes(java.nio.charset.StandardCharsets.UTF_8));
            check(TorchArchiveWriter.zip(e), what + " code " + name + " line edit " + i);
        }
    }

    private static void mutateEntries(Map<String, byte[]> entries, Random rnd, int count, String what) {
        List<String> names = new ArrayList<>(entries.keySet());
        List<String> pickles = names.stream().filter(n -> n.endsWith(".pkl")).toList();
        for (int i = 0; i < count; i++) {
            // Half the cases target the pickles, the rest any entry (storages, code, version).
            String name = i % 2 == 0 ? pickles.get(rnd.nextInt(pickles.size())) : names.get(rnd.nextInt(names.size()));
            byte[] b = entries.get(name).clone();
            int kind = rnd.nextInt(4);
            if (b.length == 0 || kind == 3) {
                b = java.util.Arrays.copyOf(b, b.length == 0 ? 0 : rnd.nextInt(b.length));                    // truncate the entry
            } else {
                int flips = 1 + rnd.nextInt(kind + 1);
                for (int k = 0; k < flips; k++) {
                    int p = rnd.nextInt(b.length);
                    b[p] = kind == 2 ? (byte) rnd.nextInt(256) : (byte) (b[p] ^ (1 << rnd.nextInt(8)));
                }
            }
            Map<String, byte[]> e = new LinkedHashMap<>(entries);
            e.put(name, b);
            check(TorchArchiveWriter.zip(e), what + " entry " + name + " mutation " + i);
        }
    }

    private static List<Integer> headerOffsets(byte[] z) {
        List<Integer> out = new ArrayList<>();
        for (int p = 0; p + 4 <= z.length; p++) {
            int sig = z[p] & 0xFF | (z[p + 1] & 0xFF) << 8 | (z[p + 2] & 0xFF) << 16 | (z[p + 3] & 0xFF) << 24;
            if (sig == 0x02014b50 || sig == 0x04034b50 || sig == 0x06054b50) out.add(p);
        }
        return out;
    }

    private static int lastSig(byte[] z, int sig) {
        for (int p = z.length - 4; p >= 0; p--) {
            if ((z[p] & 0xFF | (z[p + 1] & 0xFF) << 8 | (z[p + 2] & 0xFF) << 16 | (z[p + 3] & 0xFF) << 24) == sig) return p;
        }
        throw new IllegalStateException("no signature");
    }

    /** The published archive's entries, read with the JDK's zip (the test trusts this file). */
    private static Map<String, byte[]> readZip(Path file) throws Exception {
        Map<String, byte[]> out = new LinkedHashMap<>();
        try (ZipFile z = new ZipFile(file.toFile())) {
            for (Enumeration<? extends ZipEntry> en = z.entries(); en.hasMoreElements(); ) {
                ZipEntry e = en.nextElement();
                out.put(e.getName(), z.getInputStream(e).readAllBytes());
            }
        }
        return out;
    }

}
