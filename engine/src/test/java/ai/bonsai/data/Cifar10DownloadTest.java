package ai.bonsai.data;

import com.sun.net.httpserver.HttpServer;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The downloader against a real HTTP server on the loopback interface, serving archives made in the test:
 * a clean download, resuming with and without Range support, checksum failures and malicious archives.
 */
class Cifar10DownloadTest {
    @TempDir Path tmp;

    private HttpServer server;
    private volatile byte[] body;
    private volatile boolean supportRanges = true;
    private final List<String> rangeHeaders = new CopyOnWriteArrayList<>();

    @BeforeEach void startServer() throws IOException {
        server = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 0);
        server.createContext("/cifar-10-binary.tar.gz", ex -> {
            String range = ex.getRequestHeaders().getFirst("Range");
            rangeHeaders.add(range == null ? "" : range);
            byte[] b = body;
            int from = 0;
            if (range != null && supportRanges && range.startsWith("bytes=") && range.endsWith("-")) {
                from = Integer.parseInt(range.substring(6, range.length() - 1));
                if (from >= b.length) {
                    ex.getResponseHeaders().add("Content-Range", "bytes */" + b.length);
                    ex.sendResponseHeaders(416, -1);
                    ex.close();
                    return;
                }
                ex.getResponseHeaders().add("Content-Range", "bytes " + from + "-" + (b.length - 1) + "/" + b.length);
                ex.sendResponseHeaders(206, b.length - from);
            } else {
                ex.sendResponseHeaders(200, b.length);
            }
            try (OutputStream os = ex.getResponseBody()) {
                os.write(b, from, b.length - from);
            }
        });
        server.start();
    }

    @AfterEach void stopServer() {
        server.stop(0);
    }

    private URI url() {
        return URI.create("http://127.0.0.1:" + server.getAddress().getPort() + "/cifar-10-binary.tar.gz");
    }

    private static String md5(byte[] b) throws Exception {
        return HexFormat.of().formatHex(MessageDigest.getInstance("MD5").digest(b));
    }

    /** An archive laid out like the official one, with tiny batches: batch b has labels b, b+1; test has 9, 8, 7. */
    private static byte[] fakeCifarArchive() {
        TarBuilder t = new TarBuilder().dir("cifar-10-batches-bin/");
        t.file("cifar-10-batches-bin/batches.meta.txt", "airplane\nautomobile\n".getBytes(java.nio.charset.StandardCharsets.US_ASCII));
        for (int b = 1; b <= 5; b++) t.file("cifar-10-batches-bin/data_batch_" + b + ".bin", TestFiles.records(b, b + 1));
        t.file("cifar-10-batches-bin/test_batch.bin", TestFiles.records(9, 8, 7));
        return t.tarGz();
    }

    /** Files and folders left under {@code dir}, relative, sorted. */
    private static List<String> tree(Path dir) throws IOException {
        try (Stream<Path> s = Files.walk(dir)) {
            return s.filter(p -> !p.equals(dir)).map(p -> dir.relativize(p).toString()).sorted().toList();
        }
    }

    @Test void downloadsVerifiesExtractsAndReportsProgress() throws Exception {
        body = fakeCifarArchive();
        List<long[]> progress = new ArrayList<>();
        Path target = tmp.resolve("data");
        Path folder = Cifar10Download.builder().url(url()).md5(md5(body))
                .progress((done, total) -> progress.add(new long[] {done, total})).build().download(target);

        assertEquals(target.resolve("cifar-10-batches-bin"), folder);
        Cifar10 train = Cifar10.read(target, Cifar10.Split.TRAIN);
        assertEquals(10, train.size());
        assertEquals(5, train.label(8));
        assertEquals(9, Cifar10.forEval(folder).label(0));
        assertArrayEquals(new long[] {0, body.length}, progress.get(0));
        assertArrayEquals(new long[] {body.length, body.length}, progress.get(progress.size() - 1));
        assertEquals(List.of("cifar-10-batches-bin", "cifar-10-batches-bin/batches.meta.txt", "cifar-10-batches-bin/data_batch_1.bin",
                "cifar-10-batches-bin/data_batch_2.bin", "cifar-10-batches-bin/data_batch_3.bin", "cifar-10-batches-bin/data_batch_4.bin",
                "cifar-10-batches-bin/data_batch_5.bin", "cifar-10-batches-bin/test_batch.bin"), tree(target),
                "no archive, .part or temporary folder left behind");

        // A second run finds the data and does not ask the server again.
        int requests = rangeHeaders.size();
        assertEquals(folder, Cifar10Download.builder().url(url()).md5(md5(body)).build().download(target));
        assertEquals(requests, rangeHeaders.size());
    }

    @Test void resumesAPartialDownloadWithARangeRequest() throws Exception {
        body = fakeCifarArchive();
        Path target = Files.createDirectories(tmp.resolve("data"));
        int k = body.length / 3;
        Files.write(target.resolve("cifar-10-binary.tar.gz.part"), Arrays.copyOf(body, k));
        List<long[]> progress = new ArrayList<>();
        Cifar10Download.builder().url(url()).md5(md5(body)).keepArchive(true)
                .progress((done, total) -> progress.add(new long[] {done, total})).build().download(target);

        assertEquals(List.of("bytes=" + k + "-"), rangeHeaders);
        assertArrayEquals(new long[] {k, body.length}, progress.get(0), "progress starts at the bytes already there");
        assertArrayEquals(body, Files.readAllBytes(target.resolve("cifar-10-binary.tar.gz")), "resumed file is byte-identical");
        assertFalse(Files.exists(target.resolve("cifar-10-binary.tar.gz.part")));
        assertEquals(10, Cifar10.read(target, Cifar10.Split.TRAIN).size());
    }

    @Test void restartsCleanlyWhenTheServerIgnoresRanges() throws Exception {
        body = fakeCifarArchive();
        supportRanges = false;
        Path target = Files.createDirectories(tmp.resolve("data"));
        // A .part whose bytes are wrong: appending to it would corrupt the file, so it must be overwritten.
        byte[] junk = new byte[body.length / 2];
        Arrays.fill(junk, (byte) 0x55);
        Files.write(target.resolve("cifar-10-binary.tar.gz.part"), junk);
        Cifar10Download.builder().url(url()).md5(md5(body)).build().download(target);
        assertEquals(List.of("bytes=" + junk.length + "-"), rangeHeaders, "asked once; the 200 reply is used from its start");
        assertEquals(3, Cifar10.forEval(target).size());
    }

    @Test void restartsWhenThePartIsAlreadyComplete() throws Exception {
        body = fakeCifarArchive();
        Path target = Files.createDirectories(tmp.resolve("data"));
        Files.write(target.resolve("cifar-10-binary.tar.gz.part"), body);   // the server answers 416 to bytes=len-
        Cifar10Download.builder().url(url()).md5(md5(body)).build().download(target);
        assertEquals(List.of("bytes=" + body.length + "-", ""), rangeHeaders);
        assertEquals(3, Cifar10.forEval(target).size());
    }

    @Test void md5MismatchFailsClearlyAndDeletesThePartial() throws Exception {
        body = fakeCifarArchive();
        Path target = tmp.resolve("data");
        String wrong = "0123456789abcdef0123456789abcdef";
        var e = assertThrows(IOException.class, () -> Cifar10Download.builder().url(url()).md5(wrong).build().download(target));
        Path part = target.resolve("cifar-10-binary.tar.gz.part");
        assertEquals("download " + url() + ": MD5 mismatch, expected " + wrong + ", got " + md5(body)
                + "; the damaged download " + part + " was deleted, run the command again", e.getMessage());
        assertEquals(List.of(), tree(target));
    }

    @Test void httpErrorsNameTheUrlAndStatus() {
        body = new byte[0];
        URI missing = URI.create("http://127.0.0.1:" + server.getAddress().getPort() + "/nothing-here.tar.gz");
        var e = assertThrows(IOException.class, () -> Cifar10Download.builder().url(missing).build().download(tmp.resolve("d")));
        assertEquals("download " + missing + ": HTTP status 404, expected 200", e.getMessage());
        var bad = assertThrows(IllegalArgumentException.class, () -> Cifar10Download.builder().md5("xyz"));
        assertEquals("download MD5: expected 32 hex digits, got 'xyz'", bad.getMessage());
        bad = assertThrows(IllegalArgumentException.class, () -> Cifar10Download.builder().url(URI.create("file:///etc/passwd")));
        assertEquals("download URL: expected http or https, got 'file:///etc/passwd'", bad.getMessage());
    }

    /** Serves {@code archive}, expects the download to fail with a message containing {@code expected}. */
    private void assertRejected(byte[] archive, String expected) throws Exception {
        body = archive;
        Path target = tmp.resolve("target");
        var e = assertThrows(IOException.class, () -> Cifar10Download.builder().url(url()).md5(md5(archive)).build().download(target));
        assertTrue(e.getMessage().contains(expected), e.getMessage());
        // The verified archive stays (it passed its checksum); nothing was extracted anywhere.
        assertEquals(List.of("cifar-10-binary.tar.gz"), tree(target));
        assertEquals(List.of("target", "target/cifar-10-binary.tar.gz"), tree(tmp), "nothing written outside the target");
        Cifar10Download.deleteRecursively(target);
    }

    @Test void maliciousArchivesAreRejectedWithoutWritingOutsideTheTarget() throws Exception {
        byte[] ok = TestFiles.records(1);
        assertRejected(new TarBuilder().file("cifar-10-batches-bin/data_batch_1.bin", ok).file("../escaped.bin", ok).tarGz(),
                "entry '../escaped.bin' at byte 4096 has a '..' component");
        assertRejected(new TarBuilder().file("cifar-10-batches-bin/../../escaped.bin", ok).tarGz(),
                "has a '..' component; entries must stay inside the extraction folder");
        String absolute = tmp.resolve("escaped.bin").toString();
        assertRejected(new TarBuilder().file(absolute, ok).tarGz(),
                "entry '" + absolute + "' at byte 0 has an absolute path");
        assertRejected(new TarBuilder().dir("cifar-10-batches-bin/").symlink("cifar-10-batches-bin/link", tmp.toString())
                        .file("cifar-10-batches-bin/link/escaped.bin", ok).tarGz(),
                "entry 'cifar-10-batches-bin/link' at byte 512 is a symbolic link; only regular files and directories may be extracted");
        assertRejected(new TarBuilder().hardlink("cifar-10-batches-bin/h", "/etc/passwd").tarGz(),
                "is a hard link; only regular files and directories may be extracted");
        assertRejected(new TarBuilder().entry("cifar-10-batches-bin/dev", '3', new byte[0], "").tarGz(), "is a character device");
        assertRejected(new TarBuilder().file("a.bin", ok).file("a.bin", ok).tarGz(), "entry 'a.bin' appears twice");
    }

    @Test void corruptArchivesAreRejected() throws Exception {
        byte[] tar = new TarBuilder().file("cifar-10-batches-bin/data_batch_1.bin", TestFiles.records(1)).tar();
        tar[10] ^= 1;   // breaks the header checksum
        java.io.ByteArrayOutputStream gz = new java.io.ByteArrayOutputStream();
        try (var z = new java.util.zip.GZIPOutputStream(gz)) { z.write(tar); }
        assertRejected(gz.toByteArray(), "tar header at byte 0 has checksum");

        byte[] full = new TarBuilder().file("x.bin", TestFiles.records(1)).tar();
        gz = new java.io.ByteArrayOutputStream();
        try (var z = new java.util.zip.GZIPOutputStream(gz)) { z.write(full, 0, 1500); }
        assertRejected(gz.toByteArray(), "entry 'x.bin' is truncated: expected 3073 bytes from byte 512, the stream ended after 988");

        assertRejected("this is not gzip".getBytes(java.nio.charset.StandardCharsets.US_ASCII), "not a valid gzip file");

        assertRejected(new TarBuilder().file("cifar-10-batches-bin/readme.txt", new byte[3]).tarGz(),
                "the archive did not contain cifar-10-batches-bin/ with data_batch_1.bin");
    }

    @Test void longNamesAndTheSizeLimitAreHandled() throws Exception {
        Path root = Files.createDirectories(tmp.resolve("x"));
        String longName = "cifar-10-batches-bin/" + "n".repeat(150) + ".bin";
        byte[] tar = new TarBuilder().longNameFile(longName, new byte[] {1, 2, 3}).tar();
        new TarExtractor(root, 1000, "t.tar").extract(new java.io.ByteArrayInputStream(tar));
        assertArrayEquals(new byte[] {1, 2, 3}, Files.readAllBytes(root.resolve(longName)));

        byte[] big = new TarBuilder().file("big.bin", new byte[2000]).tar();
        Path other = Files.createDirectories(tmp.resolve("y"));
        var e = assertThrows(IOException.class, () -> new TarExtractor(other, 1000, "t.tar").extract(new java.io.ByteArrayInputStream(big)));
        assertEquals("t.tar: entry 'big.bin' takes the extracted size to 2000 bytes, over the limit of 1000", e.getMessage());
    }
}
