package ai.bonsai.dsp.prune;

import ai.bonsai.dsp.models.CifarResNet;
import ai.bonsai.tensor.Generator;
import ai.bonsai.tensor.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The channel and filter rules of spec section 5 against a direct computation ({@link PruneFixtures#naiveMask}),
 * the count = 0 fix, ties at the threshold, the hard assignment, and which layers the filter rule selects.
 */
class PruneRulesTest {
    private static final double[] BETAS = {0, 0.01, 0.1, 0.3, 0.5, 0.8, 0.97, 1};

    /** Random layers with odd N and C, G = 1..4, some kernels exactly zero (ties at zero), some groups empty. */
    @ParameterizedTest
    @ValueSource(ints = {1, 2, 3, 4})
    void channelAndFilterRulesMatchTheDirectComputation(int groups) {
        Generator gen = new Generator(1000 + groups);
        int[][] shapes = {{7, 5, 3}, {13, 9, 1}, {3, 11, 3}, {1, 3, 3}, {15, 1, 3}};
        for (int[] s : shapes) {
            int n = s[0], c = s[1], k = s[2], kk = k * k;
            float[] w = Tensor.randn(gen, n * c * kk).toFloatArray();
            for (int i = 0; i < n * c; i++) {
                if (gen.nextInt(5) == 0) java.util.Arrays.fill(w, i * kk, (i + 1) * kk, 0f);
            }
            int[] group = new int[n];
            for (int f = 0; f < n; f++) group[f] = gen.nextInt(groups);
            for (double beta : BETAS) {
                for (boolean fp : new boolean[] {false, true}) {
                    float[] expected = PruneFixtures.naiveMask(w, n, c, k, group, groups, beta, fp);
                    float[] actual = PruneWrapper.layerMask(w, n, c, kk, group, groups, beta, fp);
                    assertArrayEquals(expected, actual, "N=" + n + " C=" + c + " G=" + groups + " beta=" + beta + " filterRule=" + fp);
                }
            }
        }
    }

    @Test
    void countZeroPrunesNothing() {
        // beta = 0, and a beta below the smallest normalised importance: count = 0 in both cases.
        double[] imp = {0.4, 0.25, 0.35};
        assertArrayEquals(new boolean[] {true, true, true}, PruneWrapper.keepByCumulative(imp, 0));
        assertArrayEquals(new boolean[] {true, true, true}, PruneWrapper.keepByCumulative(imp, 0.25));
        // The reference would index count - 1 = -1 and drop the largest value's group-mates: here nothing goes.
        float[] w = Tensor.randn(new Generator(5), 5 * 7 * 9).toFloatArray();
        float[] m = PruneWrapper.layerMask(w, 5, 7, 9, new int[] {0, 1, 1, 0, 2}, 3, 0, true);
        for (float v : m) assertEquals(1f, v);
        // A one-filter layer under the filter rule keeps its filter while count = 0 (the reference always dropped it).
        float[] one = PruneWrapper.layerMask(Tensor.randn(new Generator(6), 4 * 9).toFloatArray(), 1, 4, 9, new int[] {0}, 1, 0.5, true);
        int kept = 0;
        for (float v : one) kept += (int) v;
        assertTrue(kept > 0, "single filter dropped at beta 0.5");
    }

    @Test
    void valuesEqualToTheThresholdArePruned() {
        // Four equal importances, beta 0.3: count = 1, threshold = 0.25, and only I > 0.25 survives: none does.
        assertArrayEquals(new boolean[] {false, false, false, false}, PruneWrapper.keepByCumulative(new double[] {0.25, 0.25, 0.25, 0.25}, 0.3));
        // Cumsum 0.1, 0.3, 0.6, 1.0 with beta 0.3: count = 1 (0.3 is not < 0.3), threshold 0.1.
        assertArrayEquals(new boolean[] {true, false, true, true}, PruneWrapper.keepByCumulative(new double[] {0.3, 0.1, 0.2, 0.4}, 0.3));
        assertArrayEquals(new boolean[] {true, false, false, true}, PruneWrapper.keepByCumulative(new double[] {0.3, 0.1, 0.2, 0.4}, 0.31));
    }

    @Test
    void hardAssignmentTakesTheArgmaxWithTiesToTheLowestGroup() {
        CifarResNet model = PruneFixtures.resnet(20, 1);
        PruneWrapper pw = new PruneWrapper(model, 3, 2);
        assertArrayEquals(new int[16], pw.hardAssignment(0), "all-zero logits put every filter in group 0");
        float[] logits = new float[3 * 16];
        logits[16 + 1] = 1;                 // filter 1 -> group 1
        logits[2 * 16 + 2] = 2;             // filter 2 -> group 2
        logits[16 + 3] = 1; logits[2 * 16 + 3] = 1;   // filter 3: tie between 1 and 2 -> 1
        logits[4] = -1;                     // filter 4: groups 1 and 2 tie at 0 above group 0 -> 1
        pw.groupLogits(0).copyFrom(Tensor.of(logits, 3, 16));
        int[] got = pw.hardAssignment(0);
        assertArrayEquals(PruneFixtures.naiveAssignment(logits, 3, 16), got);
        assertEquals(1, got[1]);
        assertEquals(2, got[2]);
        assertEquals(1, got[3]);
        assertEquals(1, got[4]);
    }

    /** Masks the wrapper computes on ResNet-20 layers from their live weights and logits equal the direct rule. */
    @ParameterizedTest
    @ValueSource(ints = {1, 2, 3, 4})
    void wrapperMasksFollowTheRulesOnAResNet(int groups) {
        CifarResNet model = PruneFixtures.resnet(20, 40 + groups);
        PruneWrapper pw = new PruneWrapper(model, groups, 2);
        PruneFixtures.randomGroups(pw, new Generator(7 + groups));
        pw.setBeta(0.35);
        float[][] masks = pw.ruleMasks();
        for (PrunableLayer p : pw.layers()) {
            int[] group = PruneFixtures.naiveAssignment(pw.groupLogits(p.index()).toFloatArray(), groups, p.filters());
            float[] expected = PruneFixtures.naiveMask(p.conv().weight().toFloatArray(), p.filters(), p.channels(), p.kernel(), group, groups, 0.35, pw.isFilterPruned(p.index()));
            assertArrayEquals(expected, masks[p.index()], p.name());
        }
        // ruleMasks has no side effects; prune() stores masks that contain the rule's zeros (and possibly more).
        pw.prune();
        for (PrunableLayer p : pw.layers()) {
            float[] stored = pw.mask(p.index()).toFloatArray();
            for (int i = 0; i < stored.length; i++) if (masks[p.index()][i] == 0f) assertEquals(0f, stored[i], p.name() + " mask entry " + i);
        }
    }

    @Test
    void filterRuleSelectsEveryNthLayerOrTheListedOnes() {
        CifarResNet model = PruneFixtures.resnet(20, 2);      // 18 prunable layers
        PruneWrapper every2 = new PruneWrapper(model, 2, 2);
        PruneWrapper every3 = new PruneWrapper(model, 2, 3);
        PruneWrapper none = new PruneWrapper(model, 2, -1);
        PruneWrapper listed = new PruneWrapper(model, 2, new int[] {0, 4, 17});
        PruneWrapper both = new PruneWrapper(model, 2, 2, new int[] {0, 4});
        PruneWrapper emptyList = new PruneWrapper(model, 2, 2, new int[0]);
        assertEquals(18, every2.layers().size());
        for (int l = 0; l < 18; l++) {
            assertEquals((l + 1) % 2 == 0, every2.isFilterPruned(l), "every 2nd, layer " + l);
            assertEquals(every2.layers().get(l).name().endsWith("conv_b"), every2.isFilterPruned(l), "n = 2 selects conv_b, layer " + l);
            assertEquals((l + 1) % 3 == 0, every3.isFilterPruned(l), "every 3rd, layer " + l);
            assertFalse(none.isFilterPruned(l), "-1 disables, layer " + l);
            assertEquals(l == 0 || l == 4 || l == 17, listed.isFilterPruned(l), "listed, layer " + l);
            assertEquals(l == 0 || l == 4, both.isFilterPruned(l), "the list wins, layer " + l);
            assertFalse(emptyList.isFilterPruned(l), "an empty list wins too, layer " + l);
        }
    }

    @Test
    void filterRuleDropsWholeFiltersOnlyOnSelectedLayers() {
        CifarResNet model = PruneFixtures.resnet(20, 3);
        PruneWrapper pw = new PruneWrapper(model, 1, new int[] {2, 5});
        pw.setBeta(0.3);
        float[][] masks = pw.ruleMasks();
        for (PrunableLayer p : pw.layers()) {
            int emptyRows = 0;
            for (int f = 0; f < p.filters(); f++) {
                boolean empty = true;
                for (int c = 0; c < p.channels(); c++) empty &= masks[p.index()][f * p.channels() + c] == 0f;
                if (empty) emptyRows++;
            }
            // With one group the channel rule drops columns, never whole rows (it keeps at least the largest channel).
            if (pw.isFilterPruned(p.index())) assertTrue(emptyRows > 0, p.name() + " has no dropped filter");
            else assertEquals(0, emptyRows, p.name());
        }
    }

    @Test
    void constructorErrorsNameTheArgument() {
        CifarResNet model = PruneFixtures.resnet(20, 4);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> new PruneWrapper(new ai.bonsai.nn.Linear(2, 2, new Generator(1)), 2, 2));
        assertTrue(e.getMessage().contains("PrunableLayer.discover") && e.getMessage().contains("Linear"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> new PruneWrapper(model, 0, 2));
        assertTrue(e.getMessage().contains("numGroups") && e.getMessage().contains("got 0"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> new PruneWrapper(model, 2, 0));
        assertTrue(e.getMessage().contains("fpEveryNthConv") && e.getMessage().contains("got 0"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> new PruneWrapper(model, 2, new int[] {3, 18}));
        assertTrue(e.getMessage().contains("fpLayerIndices") && e.getMessage().contains("18") && e.getMessage().contains("[0, 18)"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> new PruneWrapper(model, 2, (int[]) null));
        assertTrue(e.getMessage().contains("fpLayerIndices"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> new PruneWrapper(model, 2, 2).setBeta(1.5));
        assertTrue(e.getMessage().contains("beta") && e.getMessage().contains("1.5"), e.getMessage());
        // group buffers registered with G = 2 above; a wrapper with G = 4 finds the wrong shape.
        e = assertThrows(IllegalArgumentException.class, () -> new PruneWrapper(model, 4, 2));
        assertTrue(e.getMessage().contains("stage_1.0.conv_a.group") && e.getMessage().contains("(4, 16)"), e.getMessage());
    }
}
