package ai.bonsai.dsp.train;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.OptionalLong;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class PeakMemoryTest {
    @Test
    void readsVmHwmInBytes(@TempDir Path dir) throws Exception {
        Path status = dir.resolve("status");
        Files.writeString(status, "Name:\tjava\nVmPeak:\t 9000000 kB\nVmHWM:\t  601234 kB\nVmRSS:\t  500000 kB\n");
        assertEquals(OptionalLong.of(601234L * 1024), PeakMemory.parseKiB(status, "VmHWM:"));
    }

    @Test
    void missingFileOrLineOrOddUnitIsEmpty(@TempDir Path dir) throws Exception {
        assertEquals(OptionalLong.empty(), PeakMemory.parseKiB(dir.resolve("absent"), "VmHWM:"));
        Path status = dir.resolve("status");
        Files.writeString(status, "Name:\tjava\nVmRSS:\t  500000 kB\n");
        assertEquals(OptionalLong.empty(), PeakMemory.parseKiB(status, "VmHWM:"));
        Files.writeString(status, "VmHWM:\t  lots kB\n");
        assertEquals(OptionalLong.empty(), PeakMemory.parseKiB(status, "VmHWM:"));
        Files.writeString(status, "VmHWM:\t  12 MB\n");
        assertEquals(OptionalLong.empty(), PeakMemory.parseKiB(status, "VmHWM:"));
    }

    @Test
    void thisProcessOnLinuxHasAPeakAtLeastItsHeapInUse() {
        OptionalLong rss = PeakMemory.peakRssBytes();
        if (!Files.isReadable(Path.of("/proc/self/status"))) {
            assertTrue(rss.isEmpty());
            assertEquals("", PeakMemory.summary());
            return;
        }
        Runtime r = Runtime.getRuntime();
        assertTrue(rss.getAsLong() > 0, "VmHWM " + rss);
        assertTrue(PeakMemory.summary().startsWith("peak memory: "), PeakMemory.summary());
        assertEquals(1, PeakMemory.mib(1 << 20));
        assertEquals(0, PeakMemory.mib(0));
        assertTrue(r.maxMemory() > 0);
    }
}
