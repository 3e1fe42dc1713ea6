package ai.bonsai.backend.cpu;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/** How batches are cut into units and units into partial-sum groups. */
class ImageUnitsTest {

    /** Units cover the batch in order without gaps, differ by at most one image and respect the hard bound. */
    private static void checkCut(ImageUnits u, int maxImages, String what) {
        assertEquals(0, u.start(0), what);
        assertEquals(u.n(), u.start(u.count()), what);
        int min = Integer.MAX_VALUE, max = 0;
        for (int i = 0; i < u.count(); i++) {
            assertTrue(u.size(i) >= 1, what + ": unit " + i + " is empty");
            min = Math.min(min, u.size(i));
            max = Math.max(max, u.size(i));
        }
        assertTrue(max - min <= 1, what + ": unit sizes " + min + " to " + max);
        assertEquals(max, u.maxSize(), what);
        assertTrue(max <= maxImages, what + ": " + max + " images, bound " + maxImages);
    }

    @Test
    void everyBatchIsCutIntoNearEqualUnitsWithinTheWorkingSet() {
        for (int n = 1; n <= 300; n++) {
            for (int minImages : new int[] {1, 2, 7, 15, 40}) {
                for (int maxImages : new int[] {1, 3, 7, 16, 1000}) {
                    ImageUnits u = ImageUnits.of(n, minImages, maxImages);
                    String what = "n=" + n + " min " + minImages + " max " + maxImages + ": " + u.count() + " units";
                    checkCut(u, maxImages, what);
                    if (n >= 2) assertTrue(u.count() >= 2, what);
                    int groups = u.groups(16);
                    assertTrue(groups >= 1 && groups <= 16, what);
                    int gMin = Integer.MAX_VALUE, gMax = 0;
                    for (int gi = 0; gi < groups; gi++) {
                        int size = u.groupStart(gi + 1, groups) - u.groupStart(gi, groups);
                        gMin = Math.min(gMin, size);
                        gMax = Math.max(gMax, size);
                    }
                    assertEquals(u.count(), u.groupStart(groups, groups), what);
                    assertTrue(gMin >= 1 && gMax - gMin <= 1, what + ": groups of " + gMin + " to " + gMax + " units");
                }
            }
        }
    }

    /**
     * ResNet-20's layers at batch 128 (the bounds the Winograd kernels compute for them): unit counts that 2 and 4
     * threads share equally, where the old rule made 19 and 9 units.
     */
    @Test
    void resNetBatchesGiveUnitCountsThatThreadsShareEqually() {
        assertEquals(20, ImageUnits.of(128, 8, 7).count());      // 32x32, 16 channels: the working set allows 7 images
        assertEquals(16, ImageUnits.of(128, 8, 9).count());      // 16x16, 32 channels
        assertEquals(8, ImageUnits.of(128, 15, 1000).count());   // 8x8, 64 channels: 15 images for 256 positions
        assertEquals(44, ImageUnits.of(128, 8, 3).count());      // the stride-2 direct kernels' staged input
        assertEquals(1, ImageUnits.of(1, 1, 7).count());         // inference: one image, one unit
        assertEquals(2, ImageUnits.of(8, 15, 1000).count());     // a small batch still uses two threads
        assertEquals(3, ImageUnits.of(3, 1, 100).count());       // one image each when the batch is below 16
    }
}
