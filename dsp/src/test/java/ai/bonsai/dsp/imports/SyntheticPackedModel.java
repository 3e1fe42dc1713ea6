package ai.bonsai.dsp.imports;

import ai.bonsai.dsp.imports.TorchArchiveWriter.FloatT;
import ai.bonsai.dsp.imports.TorchArchiveWriter.LongT;
import ai.bonsai.dsp.imports.TorchArchiveWriter.Obj;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

/**
 * A small fake packed DSP model, written as a TorchScript archive by {@link TorchArchiveWriter}, with a shape
 * unlike the published ones: two stages of 1 and 2 blocks, 4/6 channels, a block with a single conv_a branch
 * (single-output sampler; for odd seeds a concat that passes its input through, for even seeds the published
 * form: a concat called with no arguments that returns None, and sampler_b reading the branch directly), samplers whose outputs feed the branches
 * out of order, concatenations that list their arguments out of order, and residual adds in shuffled order.
 * It keeps its own description (the truth) so tests can compare the import and forward with it.
 */
final class SyntheticPackedModel {
    /** One branch as generated: input index list, output list (B only), conv weight and BN. */
    record Branch(int layersIndex, int[] in, int[] out, float[] weight, int filters, float[][] bn) {}

    /** The truth of one block: branches A in concatenation order, branches B in residual-add order. */
    record BlockTruth(String name, int inC, int outC, int stride, List<Branch> a, List<Branch> b, float[] shortcutW, float[][] shortcutBn) {}

    final List<BlockTruth> blocks = new ArrayList<>();
    float[] stemW;
    float[][] stemBn;
    float[] fcW, fcB;
    final int classes = 3;
    final Map<String, byte[]> entries;

    private final Random rnd;
    private final Map<String, String> code = new LinkedHashMap<>();
    private final List<LongT> constants = new ArrayList<>();
    private int classCounter;
    /** Single conv_a branches in the published form: concat_a() takes nothing, sampler_b reads the branch. */
    private final boolean unreadConcat;

    SyntheticPackedModel(long seed) {
        rnd = new Random(seed);
        unreadConcat = seed % 2 == 0;
        Map<String, Object> root = new LinkedHashMap<>();
        root.put("training", Boolean.FALSE);
        stemW = rand(4 * 3 * 9);
        stemBn = bn(4);
        root.put("conv_1_3x3", conv(stemW, 4, 3, 3, 1, 1));
        root.put("bn_1", batchNorm(stemBn));
        Map<String, Object> s1 = new LinkedHashMap<>(), s2 = new LinkedHashMap<>();
        s1.put("0", block("stage_1.0", 4, 4, 1, new int[] {1, 3}, new int[] {2, 1}));   // conv_a keeps 4 of 4 filters at most, as pruning does
        s2.put("0", block("stage_2.0", 4, 6, 2, new int[] {5}, new int[] {1, 2, 2}));
        s2.put("1", block("stage_2.1", 6, 6, 1, new int[] {2, 1, 3}, new int[] {4}));
        root.put("stage_1", seq(s1));
        root.put("stage_2", seq(s2));
        root.put("avgpool", module("AdaptiveAvgPool2d", new LinkedHashMap<>(),
                "    x = torch.adaptive_avg_pool2d(argument_1, [1, 1])\n    return x\n", "argument_1"));
        fcW = rand(classes * 6);
        fcB = rand(classes);
        Map<String, Object> fc = new LinkedHashMap<>();
        fc.put("weight", new FloatT(fcW, classes, 6));
        fc.put("bias", new FloatT(fcB, classes));
        root.put("classifier", module("Linear", fc, "    return torch.linear(input, self.weight, self.bias)\n", "input"));
        Obj model = new Obj("__torch__.fake.CifarResNet", root);
        code.put("__torch__/fake.py", "class CifarResNet(Module):\n  def forward(self: __torch__.fake.CifarResNet,\n    x: Tensor) -> Tensor:\n    return x\n");
        entries = TorchArchiveWriter.archive("fake_model", model, constants, code);
    }

    byte[] bytes() { return TorchArchiveWriter.zip(entries); }

    /** widthsA: filters of each conv_a branch (layers_a order); filtersB: filters of each conv_b branch. */
    private Obj block(String name, int inC, int outC, int stride, int[] widthsA, int[] filtersB) {
        int na = widthsA.length, nb = filtersB.length;
        int[] samplerPerm = perm(na), concatPerm = perm(na), addPerm = perm(nb), samplerBPerm = perm(nb);
        // conv_a branches, by layers_a index
        Branch[] aByLayer = new Branch[na];
        int[] constA = new int[na];
        for (int i = 0; i < na; i++) {
            int[] in = subset(inC, 1 + rnd.nextInt(inC));
            aByLayer[i] = new Branch(i, in, null, rand(widthsA[i] * in.length * 9), widthsA[i], bn(widthsA[i]));
        }
        // sampler output j feeds layers_a[samplerPerm^-1 ...]: layers_a[i] reads sampler output samplerPerm[i]
        int[] samplerOut = new int[na];                          // sampler output j -> its constant
        for (int i = 0; i < na; i++) samplerOut[samplerPerm[i]] = constant(aByLayer[i].in(), true);
        List<Branch> a = new ArrayList<>();
        for (int p = 0; p < na; p++) a.add(aByLayer[concatPerm[p]]);
        int width = 0;
        for (int w : widthsA) width += w;
        // conv_b branches: disjoint output sets
        int[] outs = perm(outC);
        int used = 0;
        Branch[] bByLayer = new Branch[nb];
        for (int k = 0; k < nb; k++) {
            int[] out = java.util.Arrays.copyOfRange(outs, used, used + filtersB[k]);
            used += filtersB[k];
            int[] in = subset(width, 1 + rnd.nextInt(width));
            bByLayer[k] = new Branch(k, in, out, rand(filtersB[k] * in.length * 9), filtersB[k], bn(filtersB[k]));
        }
        int[] samplerBOut = new int[nb];
        for (int k = 0; k < nb; k++) samplerBOut[samplerBPerm[k]] = constant(bByLayer[k].in(), true);
        // residual argument q (q = 0..nb-1) is layers_b[q]'s output; the adds happen in addPerm order
        int[] addConst = new int[nb];
        for (int q = 0; q < nb; q++) addConst[q] = constant(bByLayer[q].out(), false);
        List<Branch> b = new ArrayList<>();
        for (int q = 0; q < nb; q++) b.add(bByLayer[q]);
        float[] scW = null;
        float[][] scBn = null;
        Map<String, Object> attrs = new LinkedHashMap<>();
        attrs.put("training", Boolean.FALSE);
        Map<String, Object> la = new LinkedHashMap<>(), lb = new LinkedHashMap<>();
        for (int i = 0; i < na; i++) la.put(Integer.toString(i), branchSeq(aByLayer[i], stride, true));
        for (int k = 0; k < nb; k++) lb.put(Integer.toString(k), branchSeq(bByLayer[k], 1, false));
        attrs.put("layers_a", seq(la));
        attrs.put("sampler_a", sampler(samplerOut));
        boolean unread = na == 1 && unreadConcat;
        attrs.put("concat_a", unread ? module("Concat_T1", attrsTraining(), "    return None\n") : concat(concatPerm));
        attrs.put("layers_b", seq(lb));
        attrs.put("sampler_b", sampler(samplerBOut));
        attrs.put("residual", iadd(addConst, addPerm));
        if (inC != outC || stride != 1) {
            scW = rand(outC * inC);
            scBn = bn(outC);
            Map<String, Object> ds = new LinkedHashMap<>();
            ds.put("0", conv(scW, outC, inC, 1, stride, 0));
            ds.put("1", batchNorm(scBn));
            attrs.put("downsample", seq(ds));
        }
        blocks.add(new BlockTruth(name, inC, outC, stride, a, b, scW, scBn));
        // forward: a shuffled but faithful wiring
        StringBuilder f = new StringBuilder();
        f.append("    sampler_a = self.sampler_a\n    layers_a = self.layers_a\n    concat_a = self.concat_a\n");
        f.append("    sampler_b = self.sampler_b\n    layers_b = self.layers_b\n    residual = self.residual\n");
        String sa = na == 1 ? "_sa0" : tupleTargets("_sa", na);
        f.append("    ").append(sa).append(" = (sampler_a).forward(x, )\n");
        for (int i = 0; i < na; i++) f.append("    _la").append(i).append(" = getattr(layers_a, \"").append(i).append("\")\n");
        if (unread) {
            // As tracing prints it: the lone branch's output goes straight to sampler_b; the concat is called, unread.
            f.append("    _cat = (_la0).forward(_sa0, )\n    _unused = (concat_a).forward()\n");
        } else {
            f.append("    _cat = (concat_a).forward(");
            for (int i = 0; i < na; i++) f.append("(_la").append(i).append(").forward(_sa").append(samplerPerm[i]).append(", ), ");
            f.append(")\n");
        }
        f.append("    ").append(nb == 1 ? "_sb0" : tupleTargets("_sb", nb)).append(" = (sampler_b).forward(_cat, )\n");
        for (int k = 0; k < nb; k++) f.append("    _lb").append(k).append(" = getattr(layers_b, \"").append(k).append("\")\n");
        String sc = "x";
        if (attrs.containsKey("downsample")) { f.append("    downsample = self.downsample\n    _sc = (downsample).forward(x, )\n"); sc = "_sc"; }
        f.append("    _r = (residual).forward(").append(sc).append(", ");
        for (int k = 0; k < nb; k++) f.append("(_lb").append(k).append(").forward(_sb").append(samplerBPerm[k]).append(", ), ");
        f.append(")\n    return torch.relu_(_r)\n");
        return module("Compactblock", attrs, f.toString(), "x");
    }

    private static String tupleTargets(String prefix, int n) {
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < n; i++) sb.append(prefix).append(i).append(", ");
        return sb.toString().trim();
    }

    private Obj sampler(int[] outputConstants) {
        StringBuilder f = new StringBuilder();
        for (int j = 0; j < outputConstants.length; j++) {
            f.append("    input").append(j).append(" = torch.take_along_dim(argument_1, CONSTANTS.c").append(outputConstants[j]).append(", 1)\n");
        }
        if (outputConstants.length == 1) f.append("    return input0\n");
        else {
            f.append("    return (");
            for (int j = 0; j < outputConstants.length; j++) f.append(j == 0 ? "" : ", ").append("input").append(j);
            f.append(")\n");
        }
        return module("Sampler_T" + outputConstants.length, attrsTraining(), f.toString(), "argument_1");
    }

    private Obj concat(int[] concatPerm) {
        int n = concatPerm.length;
        String[] params = new String[n];
        for (int i = 0; i < n; i++) params[i] = "argument_" + (i + 1);
        String body;
        if (n == 1) body = "    return argument_1\n";
        else {
            StringBuilder f = new StringBuilder("    _0 = [");
            for (int p = 0; p < n; p++) f.append(p == 0 ? "" : ", ").append("argument_").append(concatPerm[p] + 1);
            body = f.append("]\n    return torch.cat(_0, 1)\n").toString();
        }
        return module("Concat_T" + n, attrsTraining(), body, params);
    }

    private Obj iadd(int[] addConst, int[] order) {
        int n = addConst.length;
        String[] params = new String[n + 1];
        params[0] = "argument_1";
        for (int q = 0; q < n; q++) params[q + 1] = "argument_" + (q + 2);
        StringBuilder f = new StringBuilder();
        String prev = "argument_1";
        for (int t = 0; t < n; t++) {
            int q = order[t];
            f.append("    out").append(t).append(" = torch.index_add_(").append(prev).append(", 1, CONSTANTS.c").append(addConst[q]).append(", argument_").append(q + 2).append(")\n");
            prev = "out" + t;
        }
        f.append("    return ").append(prev).append('\n');
        return module("IAdd_T" + n, attrsTraining(), f.toString(), params);
    }

    private Obj branchSeq(Branch br, int stride, boolean relu) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("0", conv(br.weight(), br.filters(), br.in().length, 3, stride, 1));
        m.put("1", batchNorm(br.bn()));
        if (relu) m.put("2", module("ReLU", attrsTraining(), "    return torch.relu_(argument_1)\n", "argument_1"));
        return seq(m);
    }

    private Obj conv(float[] w, int out, int in, int k, int stride, int pad) {
        Map<String, Object> a = attrsTraining();
        a.put("weight", new FloatT(w, out, in, k, k));
        return module("Conv2d", a, "    weight = self.weight\n    input = torch._convolution(argument_1, weight, None, [" + stride + ", " + stride + "], ["
                + pad + ", " + pad + "], [1, 1], False, [0, 0], 1, False, True, True, True)\n    return input\n", "argument_1");
    }

    private Obj batchNorm(float[][] p) {
        Map<String, Object> a = attrsTraining();
        a.put("weight", new FloatT(p[0], p[0].length));
        a.put("bias", new FloatT(p[1], p[1].length));
        a.put("running_mean", new FloatT(p[2], p[2].length));
        a.put("running_var", new FloatT(p[3], p[3].length));
        a.put("num_batches_tracked", new LongT(new long[] {7}));
        return module("BatchNorm2d", a, "    x = torch.batch_norm(argument_1, self.weight, self.bias, self.running_mean, self.running_var, False, 0.10000000000000001, 1.0000000000000001e-05, True)\n    return x\n", "argument_1");
    }

    private Obj seq(Map<String, Object> children) {
        Map<String, Object> a = attrsTraining();
        a.putAll(children);
        return module("Sequential", a, "    return argument_1\n", "argument_1");
    }

    /** A module of a fresh class {@code __torch__.fake.m<N>.<simple>} with the given forward body. */
    private Obj module(String simple, Map<String, Object> attrs, String body, String... params) {
        String mod = "m" + classCounter++;
        String cls = "__torch__.fake." + mod + "." + simple;
        StringBuilder sb = new StringBuilder("class ").append(simple).append("(Module):\n  __parameters__ = []\n  training : bool\n");
        sb.append("  def forward(self: ").append(cls);
        for (String p : params) sb.append(",\n    ").append(p).append(": Tensor");
        sb.append(body.contains("return None") ? ") -> NoneType:\n" : ") -> Tensor:\n").append(body);
        code.put("__torch__/fake/" + mod + ".py", sb.toString());
        return new Obj(cls, attrs);
    }

    private static Map<String, Object> attrsTraining() {
        Map<String, Object> a = new LinkedHashMap<>();
        a.put("training", Boolean.FALSE);
        a.put("_is_full_backward_hook", null);
        return a;
    }

    private int constant(int[] idx, boolean gather) {
        long[] v = new long[idx.length];
        for (int i = 0; i < idx.length; i++) v[i] = idx[i];
        constants.add(gather ? new LongT(v, 1, v.length, 1, 1) : new LongT(v, v.length));
        return constants.size() - 1;
    }

    private int[] perm(int n) {
        int[] p = new int[n];
        for (int i = 0; i < n; i++) p[i] = i;
        for (int i = n - 1; i > 0; i--) { int j = rnd.nextInt(i + 1), t = p[i]; p[i] = p[j]; p[j] = t; }
        return p;
    }

    /** m distinct indices of [0, n) in random order. */
    private int[] subset(int n, int m) { return java.util.Arrays.copyOf(perm(n), m); }

    private float[] rand(int n) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) v[i] = (float) rnd.nextGaussian() * 0.5f;
        return v;
    }

    private float[][] bn(int c) {
        float[][] p = new float[4][c];
        for (int i = 0; i < c; i++) {
            p[0][i] = 0.5f + rnd.nextFloat();
            p[1][i] = (float) rnd.nextGaussian() * 0.1f;
            p[2][i] = (float) rnd.nextGaussian() * 0.1f;
            p[3][i] = 0.5f + rnd.nextFloat();
        }
        return p;
    }
}
