package ai.bonsai.data;

import java.io.BufferedInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.InterruptedIOException;
import java.io.OutputStream;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.DirectoryStream;
import java.nio.file.FileVisitResult;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.SimpleFileVisitor;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.BasicFileAttributes;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Duration;
import java.util.HexFormat;
import java.util.Locale;
import java.util.Optional;
import java.util.zip.GZIPInputStream;

/**
 * Fetches the official CIFAR-10 binary archive and unpacks it, for {@code bonsai download cifar10}.
 *
 * <p>Steps, each safe to interrupt and re-run:
 * <ol>
 *   <li>download to {@code <folder>/cifar-10-binary.tar.gz.part}; if a {@code .part} is already there, ask
 *       the server for the rest with an HTTP Range request, and start over if it does not support that;</li>
 *   <li>check the MD5 of the whole file; on a mismatch delete the {@code .part} and fail, naming both sums;</li>
 *   <li>rename the {@code .part} to {@code cifar-10-binary.tar.gz};</li>
 *   <li>extract into a fresh temporary folder inside the target with {@link TarExtractor} (regular files and
 *       folders only, nothing outside), then move {@code cifar-10-batches-bin} into place with an atomic
 *       rename, so the folder is never seen half written;</li>
 *   <li>delete the archive, unless asked to keep it.</li>
 * </ol>
 * A target that already holds the six batch files is left alone.
 *
 * <p>The URL and checksum can be overridden (tests serve their own archive from a local server).
 */
public final class Cifar10Download {
    public static final URI DEFAULT_URL = URI.create("https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz");
    public static final String DEFAULT_MD5 = "c32a1d4ab5d03f1284b67883e8d87530";
    /** The official archive unpacks to about 185 MB; anything far beyond that is not CIFAR-10. */
    public static final long DEFAULT_MAX_EXTRACTED_BYTES = 1L << 30;

    /** Download progress; {@code total} is -1 while unknown (no Content-Length). Called on the downloading thread. */
    @FunctionalInterface
    public interface Progress {
        void update(long done, long total);
    }

    private final URI url;
    private final String md5;
    private final Progress progress;
    private final boolean keepArchive;
    private final long maxExtractedBytes;
    private final HttpClient client;

    private Cifar10Download(Builder b) {
        this.url = b.url;
        this.md5 = b.md5.toLowerCase(Locale.ROOT);
        this.progress = b.progress;
        this.keepArchive = b.keepArchive;
        this.maxExtractedBytes = b.maxExtractedBytes;
        this.client = HttpClient.newBuilder()
                .followRedirects(HttpClient.Redirect.NORMAL)
                .connectTimeout(b.connectTimeout)
                .build();
    }

    public static Builder builder() {
        return new Builder();
    }

    /**
     * Makes sure {@code target} holds CIFAR-10 and returns the folder with the batch files
     * ({@code target/cifar-10-batches-bin}), ready for {@link Cifar10#read}.
     */
    public Path download(Path target) throws IOException {
        Files.createDirectories(target);
        Path batches = target.resolve(Cifar10.ARCHIVE_FOLDER);
        if (Cifar10.isCompleteFolder(target)) {
            return Files.isRegularFile(target.resolve(Cifar10.TEST_FILE)) ? target : batches;
        }
        Path archive = target.resolve(archiveName());
        if (Files.isRegularFile(archive) && !md5Of(archive).equals(md5)) {
            Files.delete(archive);   // a stale or damaged archive from an earlier run: fetch it again
        }
        if (!Files.isRegularFile(archive)) fetch(archive);
        extract(archive, target, maxExtractedBytes, extracted -> {
            if (!Files.isDirectory(extracted.resolve(Cifar10.ARCHIVE_FOLDER)) || !Cifar10.isCompleteFolder(extracted.resolve(Cifar10.ARCHIVE_FOLDER))) {
                throw new IOException(archive + ": the archive did not contain " + Cifar10.ARCHIVE_FOLDER + "/ with "
                        + String.join(", ", Cifar10.TRAIN_FILES) + " and " + Cifar10.TEST_FILE + "; is the URL " + url + " the CIFAR-10 binary version?");
            }
        });
        if (!keepArchive) Files.deleteIfExists(archive);
        return batches;
    }

    /** The archive's file name: the last segment of the URL's path. */
    String archiveName() {
        String path = url.getPath();
        String name = path == null ? "" : path.substring(path.lastIndexOf('/') + 1);
        return name.isEmpty() || name.equals("..") || name.equals(".") ? "cifar-10-binary.tar.gz" : name;
    }

    /** Downloads to {@code archive}.part (resuming it if present), verifies the MD5 and renames it to {@code archive}. */
    void fetch(Path archive) throws IOException {
        Path part = archive.resolveSibling(archive.getFileName() + ".part");
        long have = Files.isRegularFile(part) ? Files.size(part) : 0;
        HttpResponse<InputStream> resp = have > 0 ? send(have) : null;
        if (resp != null && !resumable(resp, have)) {
            if (resp.statusCode() == 200) {
                have = 0;   // the server ignores ranges and sent the whole file: write it from the start
            } else {
                resp.body().close();   // e.g. 416 when the .part is complete or longer than the file: start over
                resp = null;
            }
        }
        if (resp == null) {
            have = 0;
            resp = send(0);
            if (resp.statusCode() != 200) {
                resp.body().close();
                throw new IOException("download " + url + ": HTTP status " + resp.statusCode() + ", expected 200");
            }
        }
        long total = totalSize(resp, have);
        try (InputStream in = resp.body();
             OutputStream out = Files.newOutputStream(part, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
                     have > 0 ? StandardOpenOption.APPEND : StandardOpenOption.TRUNCATE_EXISTING)) {
            byte[] buf = new byte[1 << 16];
            long done = have;
            progress.update(done, total);
            for (int n; (n = in.read(buf)) >= 0; ) {
                out.write(buf, 0, n);
                done += n;
                progress.update(done, total);
            }
            if (total >= 0 && done != total) {
                throw new IOException("download " + url + ": connection closed after " + done + " of " + total
                        + " bytes; run the command again to resume from " + part);
            }
        }
        String actual = md5Of(part);
        if (!actual.equals(md5)) {
            Files.deleteIfExists(part);
            throw new IOException("download " + url + ": MD5 mismatch, expected " + md5 + ", got " + actual
                    + "; the damaged download " + part + " was deleted, run the command again");
        }
        Files.move(part, archive, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
    }

    private HttpResponse<InputStream> send(long from) throws IOException {
        HttpRequest.Builder rb = HttpRequest.newBuilder(url).GET();
        if (from > 0) rb.header("Range", "bytes=" + from + "-");
        try {
            return client.send(rb.build(), HttpResponse.BodyHandlers.ofInputStream());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new InterruptedIOException("download " + url + ": interrupted");
        } catch (IOException e) {
            throw new IOException("download " + url + ": " + e.getMessage(), e);
        }
    }

    /** A 206 whose Content-Range starts exactly where our partial file ends. */
    private static boolean resumable(HttpResponse<?> resp, long have) {
        if (resp.statusCode() != 206) return false;
        Optional<String> range = resp.headers().firstValue("Content-Range");
        return range.isPresent() && range.get().trim().startsWith("bytes " + have + "-");
    }

    /** Size of the whole file: from Content-Range on a resumed download, else Content-Length; -1 if unknown. */
    private static long totalSize(HttpResponse<?> resp, long have) {
        if (resp.statusCode() == 206) {
            String range = resp.headers().firstValue("Content-Range").orElse("");
            int slash = range.lastIndexOf('/');
            if (slash >= 0) {
                try { return Long.parseLong(range.substring(slash + 1).trim()); } catch (NumberFormatException e) { /* "*": unknown */ }
            }
        }
        long length = resp.headers().firstValueAsLong("Content-Length").orElse(-1);
        return length < 0 ? -1 : have + length;
    }

    /** Lower-case hex MD5 of a file. */
    static String md5Of(Path file) throws IOException {
        MessageDigest md;
        try {
            md = MessageDigest.getInstance("MD5");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("this JVM has no MD5 MessageDigest, which every Java platform must provide", e);
        }
        try (InputStream in = Files.newInputStream(file)) {
            byte[] buf = new byte[1 << 16];
            for (int n; (n = in.read(buf)) >= 0; ) md.update(buf, 0, n);
        }
        return HexFormat.of().formatHex(md.digest());
    }

    /** Inspects an extracted tree before it is moved into place. */
    @FunctionalInterface
    interface ExtractedCheck {
        void check(Path extractedRoot) throws IOException;
    }

    /**
     * Extracts a .tar.gz into {@code target}: into a temporary folder first, which {@code check} must accept,
     * then each top-level entry is renamed into place, replacing what was there. On any failure nothing in
     * {@code target} changes and the temporary folder is deleted.
     */
    static void extract(Path archive, Path target, long maxBytes, ExtractedCheck check) throws IOException {
        Path tmp = Files.createTempDirectory(target, ".extract-");
        try {
            try (InputStream in = new BufferedInputStream(new GZIPInputStream(Files.newInputStream(archive), 1 << 16), 1 << 16)) {
                new TarExtractor(tmp, maxBytes, archive.toString()).extract(in);
            } catch (java.util.zip.ZipException e) {
                throw new IOException(archive + ": not a valid gzip file (" + e.getMessage() + ")", e);
            }
            check.check(tmp);
            try (DirectoryStream<Path> entries = Files.newDirectoryStream(tmp)) {
                for (Path entry : entries) replace(entry, target.resolve(entry.getFileName().toString()));
            }
        } finally {
            deleteRecursively(tmp);
        }
    }

    /** Moves {@code from} to {@code to} with atomic renames; an existing {@code to} is moved aside, then deleted. */
    private static void replace(Path from, Path to) throws IOException {
        if (Files.exists(to, java.nio.file.LinkOption.NOFOLLOW_LINKS)) {
            Path old = Files.createTempDirectory(to.getParent(), ".old-");
            Path aside = old.resolve(to.getFileName().toString());
            Files.move(to, aside, StandardCopyOption.ATOMIC_MOVE);
            Files.move(from, to, StandardCopyOption.ATOMIC_MOVE);
            deleteRecursively(old);
        } else {
            Files.move(from, to, StandardCopyOption.ATOMIC_MOVE);
        }
    }

    /** Deletes a tree without following symbolic links. */
    static void deleteRecursively(Path root) throws IOException {
        if (!Files.exists(root, java.nio.file.LinkOption.NOFOLLOW_LINKS)) return;
        Files.walkFileTree(root, new SimpleFileVisitor<>() {
            @Override public FileVisitResult visitFile(Path file, BasicFileAttributes attrs) throws IOException {
                Files.delete(file);
                return FileVisitResult.CONTINUE;
            }

            @Override public FileVisitResult postVisitDirectory(Path dir, IOException e) throws IOException {
                if (e != null) throw e;
                Files.delete(dir);
                return FileVisitResult.CONTINUE;
            }
        });
    }

    /** Options; the defaults fetch the official archive. */
    public static final class Builder {
        private URI url = DEFAULT_URL;
        private String md5 = DEFAULT_MD5;
        private Progress progress = (done, total) -> { };
        private boolean keepArchive = false;
        private long maxExtractedBytes = DEFAULT_MAX_EXTRACTED_BYTES;
        private Duration connectTimeout = Duration.ofSeconds(30);

        private Builder() {}

        public Builder url(URI url) {
            String scheme = url.getScheme();
            if (scheme == null || !(scheme.equalsIgnoreCase("http") || scheme.equalsIgnoreCase("https"))) {
                throw new IllegalArgumentException("download URL: expected http or https, got '" + url + "'");
            }
            this.url = url;
            return this;
        }

        /** Expected MD5 of the archive, 32 hex digits. */
        public Builder md5(String md5) {
            if (md5 == null || !md5.matches("[0-9a-fA-F]{32}")) {
                throw new IllegalArgumentException("download MD5: expected 32 hex digits, got '" + md5 + "'");
            }
            this.md5 = md5;
            return this;
        }

        public Builder progress(Progress progress) {
            if (progress == null) throw new IllegalArgumentException("download progress callback must not be null");
            this.progress = progress;
            return this;
        }

        /** Keep {@code cifar-10-binary.tar.gz} after extracting it (default: delete it). */
        public Builder keepArchive(boolean keep) {
            this.keepArchive = keep;
            return this;
        }

        /** Refuse archives that unpack to more than this many bytes (default 1 GiB). */
        public Builder maxExtractedBytes(long max) {
            if (max <= 0) throw new IllegalArgumentException("maxExtractedBytes must be positive, got " + max);
            this.maxExtractedBytes = max;
            return this;
        }

        public Builder connectTimeout(Duration timeout) {
            this.connectTimeout = timeout;
            return this;
        }

        public Cifar10Download build() {
            return new Cifar10Download(this);
        }
    }
}
