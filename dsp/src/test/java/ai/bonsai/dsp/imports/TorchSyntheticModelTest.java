package ai.bonsai.dsp.imports;

import ai.bonsai.autograd.GradMode;
import ai.bonsai.dsp.imports.PackedResNet.Block;
import ai.bonsai.dsp.imports.SyntheticPackedModel.BlockTruth;
import ai.bonsai.dsp.imports.SyntheticPackedModel.Branch;
import ai.bonsai.io.torch.TorchArchive;
import ai.bonsai.io.torch.TorchFormatException;
import ai.bonsai.io.torch.TorchLimits;
import ai.bonsai.nn.Functional;
import ai.bonsai.tensor.Generator;
import ai.bonsai.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.nio.charset.StandardCharsets;
import java.util.LinkedHashMap;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The importer on a fake packed model of another shape (see {@link SyntheticPackedModel}): the structure it
 * reads equals the generator's truth, and the reference forward equals an independent dense formulation of
 * the same network (masked dense conv_a / conv_b with the branch weights scattered into place, spec section 6).
 * Also: the zip checks and the code parser's errors, each naming the entry.
 */
class TorchSyntheticModelTest {
    private static PackedResNet read(byte[] bytes) throws TorchFormatException {
        return TorchPackedImporter.read(TorchArchive.read(bytes, "fake.pt", TorchLimits.DEFAULT));
    }

    @Test
    void readsTheGeneratedStructure() throws Exception {
        for (long seed = 1; seed <= 5; seed++) {
            SyntheticPackedModel m = new SyntheticPackedModel(seed);
            PackedResNet net = read(m.bytes());
            assertEquals(m.blocks.size(), net.blocks().size());
            for (int i = 0; i < m.blocks.size(); i++) {
                BlockTruth t = m.blocks.get(i);
                Block b = net.blocks().get(i);
                assertEquals(t.name(), b.name());
                assertEquals(t.outC(), b.outChannels());
                assertEquals(t.stride(), b.stride());
                assertEquals(t.shortcutW() != null, b.shortcut() != null);
                assertEquals(t.a().size(), b.branchesA().size(), t.name());
                for (int k = 0; k < t.a().size(); k++) {
                    assertArrayEquals(t.a().get(k).in(), b.branchesA().get(k).inputChannels(), t.name() + " A" + k);
                    assertEquals(t.a().get(k).layersIndex(), b.branchesA().get(k).module());
                    assertArrayEquals(t.a().get(k).weight(), b.branchesA().get(k).conv().weight().toFloatArray());
                }
                assertEquals(t.b().size(), b.branchesB().size(), t.name());
                for (int k = 0; k < t.b().size(); k++) {
                    assertArrayEquals(t.b().get(k).in(), b.branchesB().get(k).concatPositions(), t.name() + " B" + k);
                    assertArrayEquals(t.b().get(k).out(), b.branchesB().get(k).outputChannels(), t.name() + " B" + k);
                }
            }
            assertEquals(1, net.blocks().get(1).branchesA().size());
            assertEquals(3, net.blocks().get(1).branchesB().size());
            PackedResNetStats s = PackedResNetStats.of(net);
            assertTrue(s.prunableMacs() < s.densePrunableMacs() && s.prunedFlopsPercent() > 0, PackedResNetStats.report(net));
        }
    }

    @Test
    void forwardEqualsTheMaskedDenseNetwork() throws Exception {
        for (long seed : new long[] {42, 43}) {      // both single-branch forms: an unread concat, and a pass-through one
            SyntheticPackedModel m = new SyntheticPackedModel(seed);
            PackedResNet net = read(m.bytes());
            Tensor x = Tensor.randn(new Generator(3), 2, 3, 8, 8);
            try (var scope = GradMode.noGrad()) {
                float[] got = new PackedResNetForward(net).forward(x).toFloatArray();
                float[] want = dense(m, x).toFloatArray();
                assertEquals(want.length, got.length);
                for (int i = 0; i < want.length; i++) assertEquals(want[i], got[i], 1e-4 + 1e-4 * Math.abs(want[i]), "seed " + seed + " logit " + i);
            }
        }
    }

    /** The published single-branch form: the block calls concat_a() with no arguments and never reads it. */
    @Test
    void aConcatNobodyReadsIsIgnored() throws Exception {
        SyntheticPackedModel m = new SyntheticPackedModel(2);
        String block = blockSource(m.entries, "stage_2.0");
        assertTrue(block.contains("(concat_a).forward()"), block);
        assertEquals(1, read(m.bytes()).blocks().get(1).branchesA().size());
    }

    /** Wiring the importer cannot understand is refused with the file, the class, the line and the reason. */
    @Test
    void wiringThatIsNotAPackedBlockIsNamed() throws Exception {
        // conv_b's sampler reads the block input instead of conv_a's output.
        Map<String, byte[]> e = new LinkedHashMap<>(new SyntheticPackedModel(2).entries);
        String key = blockKey(e, "stage_2.0");
        String src = new String(e.get(key), StandardCharsets.UTF_8);
        e.put(key, src.replace("(sampler_b).forward(_cat, )", "(sampler_b).forward(x, )").getBytes(StandardCharsets.UTF_8));
        TorchFormatException ex = rejects(TorchArchiveWriter.zip(e), key, "class Compactblock", "expected conv_a branch outputs");
        assertTrue(ex.getMessage().matches("(?s).* line [0-9]+: .*"), ex.getMessage());
        // A conv_a branch that reads conv_a's own output: not a gather of the block input.
        Map<String, byte[]> e2 = new LinkedHashMap<>(new SyntheticPackedModel(2).entries);
        String src2 = new String(e2.get(key), StandardCharsets.UTF_8);
        e2.put(key, src2.replace("(sampler_a).forward(x, )", "(sampler_a).forward(torch.relu_(x), )").getBytes(StandardCharsets.UTF_8));
        rejects(TorchArchiveWriter.zip(e2), key, "expected a gather of the block input");
        // The block does not end in relu(residual(...)).
        Map<String, byte[]> e3 = new LinkedHashMap<>(new SyntheticPackedModel(2).entries);
        String src3 = new String(e3.get(key), StandardCharsets.UTF_8);
        e3.put(key, src3.replace("return torch.relu_(_r)", "return _r").getBytes(StandardCharsets.UTF_8));
        rejects(TorchArchiveWriter.zip(e3), key, "does not return relu(residual");
    }

    private static String blockKey(Map<String, byte[]> entries, String name) {
        // Blocks are written in order; the k-th Compactblock class is the k-th block (stage_1.0, stage_2.0, stage_2.1).
        int k = java.util.List.of("stage_1.0", "stage_2.0", "stage_2.1").indexOf(name);
        return entries.keySet().stream().filter(n -> new String(entries.get(n), StandardCharsets.UTF_8).startsWith("class Compactblock"))
                .sorted(java.util.Comparator.comparingInt(n -> Integer.parseInt(n.replaceAll(".*/m([0-9]+)\\.py$", "$1")))).skip(k).findFirst().orElseThrow();
    }

    private static String blockSource(Map<String, byte[]> entries, String name) {
        return new String(entries.get(blockKey(entries, name)), StandardCharsets.UTF_8);
    }

    /** The same network as dense convolutions whose weights are zero outside the branches. */
    private static Tensor dense(SyntheticPackedModel m, Tensor x) {
        x = bn(Functional.conv2d(x, Tensor.of(m.stemW, 4, 3, 3, 3), null, 1, 1, 1), m.stemBn).relu();
        for (BlockTruth t : m.blocks) {
            int width = t.a().stream().mapToInt(Branch::filters).sum();
            float[] wa = new float[width * t.inC() * 9];
            float[][] bna = new float[4][width];
            int row = 0;
            for (Branch a : t.a()) {
                for (int r = 0; r < a.filters(); r++, row++) {
                    for (int j = 0; j < a.in().length; j++) {
                        for (int s = 0; s < 9; s++) wa[(row * t.inC() + a.in()[j]) * 9 + s] += a.weight()[(r * a.in().length + j) * 9 + s];
                    }
                    for (int p = 0; p < 4; p++) bna[p][row] = a.bn()[p][r];
                }
            }
            Tensor h = bn(Functional.conv2d(x, Tensor.of(wa, width, t.inC(), 3, 3), null, t.stride(), 1, 1), bna).relu();
            float[] wb = new float[t.outC() * width * 9];
            float[][] bnb = new float[4][t.outC()];
            java.util.Arrays.fill(bnb[3], 1f);                      // rows of no branch: gamma = beta = 0, output 0
            for (Branch b : t.b()) {
                for (int r = 0; r < b.filters(); r++) {
                    int o = b.out()[r];
                    for (int j = 0; j < b.in().length; j++) {
                        for (int s = 0; s < 9; s++) wb[(o * width + b.in()[j]) * 9 + s] += b.weight()[(r * b.in().length + j) * 9 + s];
                    }
                    for (int p = 0; p < 4; p++) bnb[p][o] = b.bn()[p][r];
                }
            }
            Tensor y = bn(Functional.conv2d(h, Tensor.of(wb, t.outC(), width, 3, 3), null, 1, 1, 1), bnb);
            Tensor sc = t.shortcutW() == null ? x : bn(Functional.conv2d(x, Tensor.of(t.shortcutW(), t.outC(), t.inC(), 1, 1), null, t.stride(), 0, 1), t.shortcutBn());
            x = y.add(sc).relu();
        }
        x = Functional.adaptiveAvgPool2d(x, 1, 1).flatten(1);
        return Functional.linear(x, Tensor.of(m.fcW, m.classes, 6), Tensor.of(m.fcB, m.classes));
    }

    private static Tensor bn(Tensor x, float[][] p) {
        int c = p[0].length;
        return Functional.batchNorm(x, Tensor.of(p[2], c), Tensor.of(p[3], c), Tensor.of(p[0], c), Tensor.of(p[1], c), false, 0f, 1e-5f);
    }

    // ------------------------------------------------------------------------------------ zip checks

    private static TorchFormatException rejects(byte[] bytes, String... fragments) {
        TorchFormatException e = assertThrows(TorchFormatException.class, () -> read(bytes));
        for (String f : fragments) assertTrue(e.getMessage().contains(f), e.getMessage());
        return e;
    }

    @Test
    void rejectsUnsafeZipNames() {
        for (String bad : new String[] {"fake_model/../evil", "/fake_model/x", "fake_model\\x", "fake_model//x", "c:/x"}) {
            Map<String, byte[]> e = new LinkedHashMap<>(new SyntheticPackedModel(1).entries);
            e.put(bad, new byte[1]);
            rejects(TorchArchiveWriter.zip(e), bad.replace("\\", "\\"));
        }
        Map<String, byte[]> e = new LinkedHashMap<>(new SyntheticPackedModel(1).entries);
        e.put("other_root/x", new byte[1]);
        rejects(TorchArchiveWriter.zip(e), "other_root/x", "root folder");
    }

    @Test
    void rejectsDuplicateEncryptedAndUnknownMethods() {
        Map<String, byte[]> entries = new SyntheticPackedModel(1).entries;
        byte[] zip = TorchArchiveWriter.zip(entries);
        // Duplicate: rename the second entry in both headers to the first one's name (same length).
        String a = "fake_model/data/0", b = "fake_model/data/1";
        rejects(replaceAll(zip, b, a), "duplicate entry " + a);
        // Encrypted: set flag bit 0 in every central directory record.
        byte[] enc = zip.clone();
        for (int p = 0; p + 4 < enc.length; p++) if (isSig(enc, p, 0x02014b50)) enc[p + 8] |= 1;
        rejects(enc, "encrypted");
        byte[] method = zip.clone();
        for (int p = 0; p + 4 < method.length; p++) if (isSig(method, p, 0x02014b50)) method[p + 10] = 12;   // bzip2
        rejects(method, "compression method 12");
        rejects(new byte[100], "not a zip archive");
    }

    @Test
    void rejectsZipBombsByRatio() {
        Map<String, byte[]> e = new LinkedHashMap<>(new SyntheticPackedModel(1).entries);
        e.put("fake_model/code/bomb.py", new byte[5_000_000]);         // zeros deflate about 1000:1
        rejects(TorchArchiveWriter.zip(e), "bomb.py", "compression-ratio");
    }

    @Test
    void codeWithAnUnexpectedShapeIsNamed() {
        Map<String, byte[]> e = new LinkedHashMap<>(new SyntheticPackedModel(1).entries);
        String key = e.keySet().stream().filter(k -> new String(e.get(k), StandardCharsets.UTF_8).startsWith("class IAdd_T")).findFirst().orElseThrow();
        String src = new String(e.get(key), StandardCharsets.UTF_8).replace("torch.index_add_(", "torch.index_copy_(");
        e.put(key, src.getBytes(StandardCharsets.UTF_8));
        rejects(TorchArchiveWriter.zip(e), key, "index_add_");
        Map<String, byte[]> e2 = new LinkedHashMap<>(new SyntheticPackedModel(1).entries);
        String s2 = e2.keySet().stream().filter(k -> new String(e2.get(k), StandardCharsets.UTF_8).startsWith("class Sampler_T2")).findFirst().orElseThrow();
        e2.put(s2, new String(e2.get(s2), StandardCharsets.UTF_8).replace("    return (", "    if x:\n    return (").getBytes(StandardCharsets.UTF_8));
        rejects(TorchArchiveWriter.zip(e2), s2);
    }

    private static boolean isSig(byte[] b, int p, int sig) {
        return (b[p] & 0xFF | (b[p + 1] & 0xFF) << 8 | (b[p + 2] & 0xFF) << 16 | (b[p + 3] & 0xFF) << 24) == sig;
    }

    private static byte[] replaceAll(byte[] data, String from, String to) {
        byte[] f = from.getBytes(StandardCharsets.US_ASCII), t = to.getBytes(StandardCharsets.US_ASCII), out = data.clone();
        for (int p = 0; p + f.length <= out.length; p++) {
            if (java.util.Arrays.equals(out, p, p + f.length, f, 0, f.length)) System.arraycopy(t, 0, out, p, t.length);
        }
        return out;
    }
}
