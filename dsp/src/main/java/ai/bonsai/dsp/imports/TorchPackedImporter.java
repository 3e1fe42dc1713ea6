package ai.bonsai.dsp.imports;

import ai.bonsai.dsp.imports.PackedResNet.BatchNorm;
import ai.bonsai.dsp.imports.PackedResNet.Block;
import ai.bonsai.dsp.imports.PackedResNet.BranchA;
import ai.bonsai.dsp.imports.PackedResNet.BranchB;
import ai.bonsai.dsp.imports.PackedResNet.ConvBn;
import ai.bonsai.dsp.imports.TorchScriptCode.Attr;
import ai.bonsai.dsp.imports.TorchScriptCode.Call;
import ai.bonsai.dsp.imports.TorchScriptCode.Expr;
import ai.bonsai.dsp.imports.TorchScriptCode.Forward;
import ai.bonsai.dsp.imports.TorchScriptCode.ListE;
import ai.bonsai.dsp.imports.TorchScriptCode.Name;
import ai.bonsai.dsp.imports.TorchScriptCode.Num;
import ai.bonsai.dsp.imports.TorchScriptCode.Statement;
import ai.bonsai.dsp.imports.TorchScriptCode.Str;
import ai.bonsai.dsp.imports.TorchScriptCode.TupleE;
import ai.bonsai.io.torch.TorchArchive;
import ai.bonsai.io.torch.TorchDType;
import ai.bonsai.io.torch.TorchFormatException;
import ai.bonsai.io.torch.TorchLimits;
import ai.bonsai.io.torch.TorchModule;
import ai.bonsai.io.torch.TorchTensor;
import ai.bonsai.tensor.Tensor;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * Reads a packed DSP CIFAR ResNet (the {@code Compactblock} models the reference implementation publishes as
 * TorchScript) into a {@link PackedResNet}. Everything is derived from the archive: the number of stages and
 * blocks from the module tree ({@code stage_<k>} sequentials of blocks {@code 0..n-1}); per block, the
 * branches and their wiring from the data flow of the {@code code/}, never from module names or branch counts:
 *
 * <ul>
 *   <li>the block's {@code forward}, evaluated symbolically: which sub-module is called on which value. The
 *       block must return relu(R(shortcut, b_0, ..., b_m)); each conv_b branch b_q reads a gather of the conv_a
 *       output (one conv_a branch, or a concatenation of several); each conv_a branch reads a gather of the
 *       input. Any number of branches, one included, on either side; values nothing reads are ignored (a
 *       block packed into one conv_a branch still calls its concat, with no arguments);</li>
 *   <li>the samplers: {@code v = torch.take_along_dim(x, CONSTANTS.c<i>, 1)} (or
 *       {@code torch.index_select(x, 1, CONSTANTS.c<i>)}) per output, returned as a tuple or alone;</li>
 *   <li>the concat: {@code torch.cat([...], 1)} of its arguments;</li>
 *   <li>the residual: a chain {@code out = torch.index_add_(prev, 1, CONSTANTS.c<i>, argument_k)};</li>
 *   <li>each Conv2d's {@code torch._convolution} call (stride, padding; no dilation, no groups) and each
 *       BatchNorm2d's {@code torch.batch_norm} call (eval mode, eps); the pooling's output size 1x1.</li>
 * </ul>
 * The constants each use names are read from {@code constants.pkl}, and every index is checked against the
 * width it indexes. Anything else ends in a {@link TorchFormatException} saying what was expected.
 */
public final class TorchPackedImporter {
    /** Spatial size of the CIFAR input the MAC counts refer to. */
    public static final int CIFAR_INPUT_SIZE = 32;

    private final TorchArchive archive;
    private final String where;
    private final Map<String, Forward> forwards = new HashMap<>();

    private TorchPackedImporter(TorchArchive archive) {
        this.archive = archive;
        this.where = archive.source();
    }

    /** Reads {@code file} with the default limits. */
    public static PackedResNet read(Path file) throws IOException {
        return read(TorchArchive.open(file, TorchLimits.DEFAULT));
    }

    /** Interprets an archive already read. */
    public static PackedResNet read(TorchArchive archive) throws TorchFormatException {
        return new TorchPackedImporter(archive).network();
    }

    private PackedResNet network() throws TorchFormatException {
        TorchModule root = archive.model();
        if (!root.simpleName().equals("CifarResNet")) throw fail("root module is " + root.className() + ", expected a CifarResNet");
        ConvBn stem = convBn(root.child("conv_1_3x3"), root.child("bn_1"));
        TorchModule pool = root.child("avgpool");
        requireClass(pool, "AdaptiveAvgPool2d");
        checkPool(pool);
        TorchModule fc = root.child("classifier");
        requireClass(fc, "Linear");
        PackedResNet.Linear classifier = new PackedResNet.Linear(floats(fc.tensor("weight"), fc, "weight"), fc.tensors().containsKey("bias") ? floats(fc.tensor("bias"), fc, "bias") : null);
        if (classifier.weight().rank() != 2) throw fail("classifier weight is " + classifier.weight().shape() + ", expected (classes, features)");

        TreeMap<Integer, TorchModule> stages = new TreeMap<>();
        for (Map.Entry<String, TorchModule> e : root.children().entrySet()) {
            if (e.getKey().matches("stage_[0-9]{1,4}")) stages.put(Integer.parseInt(e.getKey().substring(6)), e.getValue());
        }
        if (stages.isEmpty()) throw fail("the model has no stage_<k> modules");
        int expected = stages.firstKey();
        List<Block> blocks = new ArrayList<>();
        int channels = stem.outChannels(), size = stem.outSize(CIFAR_INPUT_SIZE);
        if (stem.inChannels() != 3) throw fail("stem " + stem.module() + " takes " + stem.inChannels() + " channels, expected 3 (RGB)");
        for (Map.Entry<Integer, TorchModule> st : stages.entrySet()) {
            if (st.getKey() != expected++) throw fail("stages are not numbered consecutively: found " + stages.keySet());
            TorchModule stage = st.getValue();
            for (int b = 0; b < stage.children().size(); b++) {
                TorchModule bm = stage.child(Integer.toString(b));
                Block block = block(bm, channels, size);
                blocks.add(block);
                channels = block.outChannels();
                size = block.outSize();
            }
            if (stage.children().isEmpty()) throw fail("stage " + stage.path() + " has no blocks");
        }
        if (classifier.weight().dim(1) != channels) throw fail("classifier takes " + classifier.weight().dim(1) + " features but the last block gives " + channels);
        return new PackedResNet(archive.source(), 3, CIFAR_INPUT_SIZE, stem, blocks, classifier);
    }

    // ------------------------------------------------------------------------------------ one block

    /**
     * What a value in a block's forward is, found by evaluating the forward symbolically: the block input, a
     * sub-module, the result of calling a sub-module on some values, one element of a tuple result, or a ReLU.
     */
    private sealed interface Sym permits In, Mod, Out, Item, Relu {}

    private record In() implements Sym {
        @Override public String toString() { return "input"; }
    }

    private record Mod(String path) implements Sym {}

    /**
     * One call of the sub-module at {@code module} on {@code args}, made on source line {@code line}. Equality is identity: two calls are the same
     * value only if they are the same call, and a hostile forward that reuses values cannot make comparing or
     * printing them exponential.
     */
    private record Out(String module, List<Sym> args, int line) implements Sym {
        @Override public boolean equals(Object o) { return this == o; }

        @Override public int hashCode() { return System.identityHashCode(this); }

        @Override public String toString() { return describe(this, 3); }
    }

    private record Item(Out call, int index) implements Sym {
        @Override public String toString() { return describe(this, 3); }
    }

    private record Relu(Sym x) implements Sym {
        @Override public String toString() { return describe(this, 3); }
    }

    /** A value for messages, nested at most {@code depth} calls deep. */
    private static String describe(Sym s, int depth) {
        if (depth < 0) return "...";
        if (s instanceof Out o) {
            StringBuilder sb = new StringBuilder(o.module()).append('(');
            for (int i = 0; i < o.args().size(); i++) sb.append(i == 0 ? "" : ", ").append(describe(o.args().get(i), depth - 1));
            return sb.append(')').toString();
        }
        if (s instanceof Item it) return describe(it.call(), depth) + "[" + it.index() + "]";
        if (s instanceof Relu r) return "relu(" + describe(r.x(), depth - 1) + ")";
        if (s instanceof Mod m) return "self." + m.path();
        return "input";
    }

    /** Output {@code index} of one call of a sampler module; -1 when the sampler returns a single tensor, not a tuple. */
    private record Gather(Out call, int index) {}

    /**
     * One block, its wiring read from the data flow of its {@code forward}, whatever the names and the number of
     * branches: the block returns relu(R(shortcut, b_0, ..., b_m)); R's code is a chain of index_adds; the
     * shortcut is the input or a projection (conv + BN) of it; each b_q is a conv_b branch (conv + BN) applied
     * to a gather of the conv_a output, which is one conv_a branch or a concatenation of several (a concat
     * module's code gives the order); each conv_a branch (conv + BN + ReLU) is applied to a gather of the block
     * input. Values that nothing reads (such as the concat of a single branch, which tracing prints as a call
     * with no arguments) are ignored.
     */
    private Block block(TorchModule bm, int inChannels, int inSize) throws TorchFormatException {
        requireClass(bm, "Compactblock");
        String name = bm.path();
        Forward f = forward(bm);
        Returned result = evaluate(f, bm);
        if (!(result.value() instanceof Relu r) || !(r.x() instanceof Out res) || res.args().size() < 2) {
            throw error(f, result.line(), "block " + name + " does not return relu(residual(shortcut, branch, ...)); it returns " + result.value());
        }
        ConvBn shortcut = shortcut(f, bm, res);
        List<Sym> bValues = res.args().subList(1, res.args().size());
        List<TorchTensor> adds = residual(module(bm, res.module()), bValues.size());

        // conv_b: every branch must read the same conv_a output (one concatenation, one channel numbering).
        List<Out> bCalls = new ArrayList<>();
        List<Gather> bGathers = new ArrayList<>();
        List<Out> aCalls = null;
        for (Sym v : bValues) {
            Out call = branchCall(f, v, res, "conv_b branch");
            Gather g = gather(f, call, "conv_b branch " + call.module());
            List<Out> source = concatenation(f, bm, g.call(), 0);
            if (aCalls == null) aCalls = source;
            else if (!aCalls.equals(source)) throw error(f, call.line(), "conv_b branches read different conv_a outputs: " + aCalls + " and " + source);
            bCalls.add(call);
            bGathers.add(g);
        }

        // conv_a branches in concatenation order, each reading a gather of the block input.
        List<BranchA> as = new ArrayList<>();
        int stride = -1, outSize = -1;
        for (Out call : aCalls) {
            Gather g = gather(f, call, "conv_a branch " + call.module());
            if (!(g.call().args().get(0) instanceof In)) throw error(f, g.call().line(), "conv_a branch " + call.module() + " reads " + g.call() + ", expected a gather of the block input");
            ConvBn conv = branchConv(module(bm, call.module()), true);
            int[] in = indices(samplerOutput(bm, g), inChannels, name + " " + g.call().module() + " output " + Math.max(g.index(), 0));
            checkBranch(conv, in.length, name + "." + call.module());
            if (stride < 0) { stride = conv.stride(); outSize = conv.outSize(inSize); }
            else if (conv.stride() != stride || conv.outSize(inSize) != outSize) throw fail(name + "." + call.module() + " has stride " + conv.stride() + " but another branch has " + stride);
            as.add(new BranchA(listIndex(call.module()), in, conv));
        }
        int concatWidth = as.stream().mapToInt(a -> a.conv().outChannels()).sum();
        int outChannels = shortcut == null ? inChannels : shortcut.outChannels();
        if (shortcut != null) {
            if (shortcut.inChannels() != inChannels || shortcut.outSize(inSize) != outSize) {
                throw fail(name + " shortcut " + shortcut.module() + " maps " + shortcut.inChannels() + " channels of " + inSize + "x" + inSize + " to size " + shortcut.outSize(inSize) + ", but the block input has " + inChannels + " channels and conv_a gives " + outSize);
            }
        } else if (stride != 1) {
            throw fail(name + " has stride " + stride + " but no downsample shortcut");
        }
        List<BranchB> bs = new ArrayList<>();
        for (int q = 0; q < bCalls.size(); q++) {
            Out call = bCalls.get(q);
            Gather g = bGathers.get(q);
            ConvBn conv = branchConv(module(bm, call.module()), false);
            int[] pos = indices(samplerOutput(bm, g), concatWidth, name + " " + g.call().module() + " output " + Math.max(g.index(), 0));
            int[] out = indices(adds.get(q), outChannels, name + " residual add " + q);
            checkBranch(conv, pos.length, name + "." + call.module());
            if (conv.outChannels() != out.length) throw fail(name + "." + call.module() + " has " + conv.outChannels() + " filters but its residual add lists " + out.length + " channels");
            if (conv.outSize(outSize) != outSize) throw fail(name + "." + call.module() + " changes the spatial size " + outSize + " to " + conv.outSize(outSize));
            bs.add(new BranchB(listIndex(call.module()), pos, out, conv));
        }
        return new Block(name, inChannels, outChannels, inSize, outSize, stride, as, bs, shortcut);
    }

    /** Null for the identity shortcut, else the projection applied to the block input: Sequential(Conv2d, BatchNorm2d). */
    private ConvBn shortcut(Forward f, TorchModule bm, Out residual) throws TorchFormatException {
        Sym sc = residual.args().get(0);
        if (sc instanceof In) return null;
        if (sc instanceof Out d && d.args().size() == 1 && d.args().get(0) instanceof In) {
            TorchModule ds = module(bm, d.module());
            requireClass(ds, "Sequential");
            if (ds.children().size() != 2) throw fail(ds.path() + " has " + ds.children().keySet() + ", expected a Conv2d 0 and a BatchNorm2d 1");
            return convBn(ds.child("0"), ds.child("1"));
        }
        throw error(f, residual.line(), "the residual's first argument is " + sc + ", expected the block input or a projection of it");
    }

    /**
     * The conv_a branch calls whose outputs, concatenated in this order, are the value {@code v}: one branch read
     * directly, or a concat module's call (its code orders its arguments), possibly nested. {@code reader} is
     * the call that reads the value (its first argument), for messages.
     */
    private List<Out> concatenation(Forward f, TorchModule bm, Out reader, int depth) throws TorchFormatException {
        if (depth > 8) throw error(f, reader.line(), "concatenations nested more than 8 deep");
        Sym v = reader.args().get(0);
        if (v instanceof Out o) {
            TorchModule m = module(bm, o.module());
            if (m.simpleName().equals("Sequential")) return List.of(o);
            List<Integer> order = concat(m, o.args().size());
            List<Out> out = new ArrayList<>();
            for (int k : order) {
                Sym part = o.args().get(k);
                if (!(part instanceof Out p)) throw error(f, o.line(), o.module() + " concatenates " + part + ", expected conv_a branch outputs");
                out.addAll(concatenation(f, bm, new Out(o.module(), List.of(p), o.line()), depth + 1));
            }
            return out;
        }
        throw error(f, reader.line(), "a conv_b sampler reads " + v + ", expected conv_a branch outputs or their concatenation");
    }

    private static Out branchCall(Forward f, Sym s, Out reader, String what) throws TorchFormatException {
        if (s instanceof Out o && o.args().size() == 1) return o;
        throw error(f, reader.line(), "expected a " + what + " (a sub-module applied to one gathered value), found " + s);
    }

    /** An error about the block's source line {@code line}. */
    private static TorchFormatException error(Forward f, int line, String msg) {
        return new TorchFormatException(f.where() + " line " + line + ": " + msg);
    }

    /** The gathered value a branch call reads: an element of a sampler's tuple, or a sampler's single result. */
    private static Gather gather(Forward f, Out branch, String what) throws TorchFormatException {
        Sym a = branch.args().get(0);
        Gather g = a instanceof Item it ? new Gather(it.call(), it.index()) : a instanceof Out o ? new Gather(o, -1) : null;
        if (g == null || g.call().args().size() != 1) throw error(f, branch.line(), what + " reads " + a + ", expected an output of a sampler called on one value");
        return g;
    }

    /** The index constant behind a gathered value, from the sampler module's own code. */
    private TorchTensor samplerOutput(TorchModule bm, Gather g) throws TorchFormatException {
        TorchModule m = module(bm, g.call().module());
        List<TorchTensor> outputs = sampler(m);
        if (g.index() < 0 && outputs.size() != 1) throw fail(m.path() + " returns " + outputs.size() + " gathered tensors, but its whole result is used as one");
        int i = Math.max(g.index(), 0);
        if (i >= outputs.size()) throw fail(m.path() + ": output " + i + " is used, but it returns " + outputs.size());
        return outputs.get(i);
    }

    /** The sub-module at a dotted path below {@code bm}. */
    private static TorchModule module(TorchModule bm, String path) throws TorchFormatException {
        TorchModule m = bm;
        for (String part : path.split("\\.", 64)) m = m.child(part);
        return m;
    }

    /** k for a module path ending in ".k" (a branch's place in its ModuleList or Sequential), else -1. */
    private static int listIndex(String path) {
        String last = path.substring(path.lastIndexOf('.') + 1);
        return last.matches("[0-9]{1,6}") ? Integer.parseInt(last) : -1;
    }

    /** The value a forward returns and the line of its return statement. */
    private record Returned(Sym value, int line) {}

    /** Evaluates a block's forward symbolically: which module is called on what. */
    private Returned evaluate(Forward f, TorchModule bm) throws TorchFormatException {
        if (f.params().size() != 2) throw f.error("forward takes " + (f.params().size() - 1) + " inputs, expected 1");
        Map<String, Sym> env = new HashMap<>();
        env.put(f.params().get(1), new In());
        for (Statement s : f.body()) {
            Sym v = sym(f, s, s.value(), env, bm);
            if (s.isReturn()) return new Returned(v, s.line());
            if (s.targets().size() == 1) env.put(s.targets().get(0), v);
            else {
                if (!(v instanceof Out o)) throw f.error(s, "unpacks " + s.targets().size() + " values from " + v);
                for (int i = 0; i < s.targets().size(); i++) env.put(s.targets().get(i), new Item(o, i));
            }
        }
        throw f.error("forward does not return");
    }

    private Sym sym(Forward f, Statement s, Expr e, Map<String, Sym> env, TorchModule bm) throws TorchFormatException {
        if (e instanceof Name n) {
            Sym v = env.get(n.id());
            if (v == null) throw f.error(s, "unknown name '" + n.id() + "'");
            return v;
        }
        if (e instanceof Attr a && a.base() instanceof Name n && n.id().equals("self")) {
            bm.child(a.name());
            return new Mod(a.name());
        }
        if (e instanceof Call c) {
            String fn = TorchScriptCode.dotted(c.fn());
            if ("getattr".equals(fn) && c.args().size() == 2 && c.args().get(1) instanceof Str key) {
                if (!(sym(f, s, c.args().get(0), env, bm) instanceof Mod m)) throw f.error(s, "getattr on something that is not a module");
                return new Mod(m.path() + "." + key.value());
            }
            if ("torch.relu_".equals(fn) || "torch.relu".equals(fn)) {
                if (c.args().size() != 1) throw f.error(s, fn + " with " + c.args().size() + " arguments");
                return new Relu(sym(f, s, c.args().get(0), env, bm));
            }
            if (c.fn() instanceof Attr a && a.name().equals("forward")) {
                if (!(sym(f, s, a.base(), env, bm) instanceof Mod m)) throw f.error(s, ".forward on something that is not a module");
                List<Sym> args = new ArrayList<>();
                for (Expr x : c.args()) args.add(sym(f, s, x, env, bm));
                return new Out(m.path(), List.copyOf(args), s.line());
            }
        }
        throw f.error(s, "unexpected expression " + e);
    }

    // ------------------------------------------------------------------------------------ sub-module code

    /** The constant behind each output of a sampler, in return order. */
    private List<TorchTensor> sampler(TorchModule m) throws TorchFormatException {
        Forward f = forward(m);
        if (f.params().size() != 2) throw f.error("a sampler takes one input, this takes " + (f.params().size() - 1));
        String x = f.params().get(1);
        Map<String, TorchTensor> picks = new HashMap<>();
        List<TorchTensor> out = new ArrayList<>();
        for (Statement s : f.body()) {
            if (s.isReturn()) {
                List<Expr> items = s.value() instanceof TupleE t ? t.items() : List.of(s.value());
                for (Expr e : items) {
                    if (!(e instanceof Name n) || !picks.containsKey(n.id())) throw f.error(s, "returns something that is not a gathered input");
                    out.add(picks.get(n.id()));
                }
                return out;
            }
            if (s.targets().size() != 1 || !(s.value() instanceof Call c)) throw f.error(s, "expected 'v = torch.take_along_dim(" + x + ", CONSTANTS.c<i>, 1)'");
            String fn = TorchScriptCode.dotted(c.fn());
            boolean take = "torch.take_along_dim".equals(fn), select = "torch.index_select".equals(fn);
            if (!(take || select) || c.args().size() != 3 || !isName(c.args().get(0), x) || !isInt(c.args().get(take ? 2 : 1), 1)) {
                throw f.error(s, "expected 'v = torch.take_along_dim(" + x + ", CONSTANTS.c<i>, 1)' or 'torch.index_select(" + x + ", 1, CONSTANTS.c<i>)'");
            }
            TorchTensor t = constant(f, s, c.args().get(take ? 1 : 2));
            int[] shape = t.shape();
            boolean ok = take ? shape.length == 4 && shape[0] == 1 && shape[2] == 1 && shape[3] == 1 : shape.length == 1;
            if (!ok) throw f.error(s, "index constant has shape " + Arrays.toString(shape) + ", expected " + (take ? "(1, n, 1, 1)" : "(n)"));
            picks.put(s.targets().get(0), t);
        }
        throw f.error("no return");
    }

    /** For each concatenation position, the index of the forward argument placed there (0 = first). */
    private List<Integer> concat(TorchModule m, int inputs) throws TorchFormatException {
        Forward f = forward(m);
        if (f.params().size() != inputs + 1) throw f.error("concat takes " + (f.params().size() - 1) + " inputs but the block passes " + inputs);
        Map<String, ListE> lists = new HashMap<>();           // name -> list literal it holds
        Map<String, List<Integer>> cats = new HashMap<>();    // name -> concatenation order it holds
        for (Statement s : f.body()) {
            Expr v = s.value();
            if (!s.isReturn() && s.targets().size() == 1 && v instanceof ListE l) {
                lists.put(s.targets().get(0), l);
                continue;
            }
            List<Integer> order;
            if (v instanceof Call c && "torch.cat".equals(TorchScriptCode.dotted(c.fn())) && c.args().size() == 2 && isInt(c.args().get(1), 1)) {
                Expr list = c.args().get(0) instanceof Name n && lists.containsKey(n.id()) ? lists.get(n.id()) : c.args().get(0);
                if (!(list instanceof ListE l)) throw f.error(s, "torch.cat of something that is not a list");
                order = new ArrayList<>();
                for (Expr e : l.items()) {
                    int k = e instanceof Name n ? f.params().indexOf(n.id()) : -1;
                    if (k < 1) throw f.error(s, "torch.cat lists something that is not an argument");
                    order.add(k - 1);
                }
                if (order.size() != inputs || order.stream().distinct().count() != inputs) throw f.error(s, "torch.cat does not list each of the " + inputs + " inputs once");
            } else if (v instanceof Name n && cats.containsKey(n.id())) {
                order = cats.get(n.id());
            } else if (v instanceof Name n && inputs == 1 && n.id().equals(f.params().get(1))) {
                order = List.of(0);                            // one branch: the "concatenation" is the input
            } else {
                throw f.error(s, "expected a concat: 'torch.cat([argument_1, ...], 1)'");
            }
            if (s.isReturn()) return order;
            if (s.targets().size() != 1) throw f.error(s, "unpacks a concatenation");
            cats.put(s.targets().get(0), order);
        }
        throw f.error("no return");
    }

    /** For each branch argument of the residual (in argument order), its index constant. */
    private List<TorchTensor> residual(TorchModule m, int branches) throws TorchFormatException {
        Forward f = forward(m);
        if (f.params().size() != branches + 2) throw f.error("the residual takes " + (f.params().size() - 1) + " inputs but the block passes " + (branches + 1));
        TorchTensor[] byArg = new TorchTensor[branches];
        String current = f.params().get(1);
        for (Statement s : f.body()) {
            if (s.isReturn()) {
                if (!isName(s.value(), current)) throw f.error(s, "does not return the accumulated residual '" + current + "'");
                for (int i = 0; i < branches; i++) if (byArg[i] == null) throw f.error("branch argument " + f.params().get(i + 2) + " is never added");
                return Arrays.asList(byArg);
            }
            String fn = s.value() instanceof Call c ? TorchScriptCode.dotted(c.fn()) : null;
            if (s.targets().size() != 1 || !("torch.index_add_".equals(fn) || "torch.index_add".equals(fn))) {
                throw f.error(s, "expected 'out = torch.index_add_(" + current + ", 1, CONSTANTS.c<i>, argument_k)'");
            }
            List<Expr> a = ((Call) s.value()).args();
            if (a.size() != 4 || !isName(a.get(0), current) || !isInt(a.get(1), 1) || !(a.get(3) instanceof Name src)) {
                throw f.error(s, "expected 'out = torch.index_add_(" + current + ", 1, CONSTANTS.c<i>, argument_k)'");
            }
            int k = f.params().indexOf(src.id()) - 2;
            if (k < 0 || byArg[k] != null) throw f.error(s, "adds '" + src.id() + "', which is not a branch argument or was added before");
            TorchTensor t = constant(f, s, a.get(2));
            if (t.rank() != 1) throw f.error(s, "index constant has shape " + Arrays.toString(t.shape()) + ", expected (n)");
            byArg[k] = t;
            current = s.targets().get(0);
        }
        throw f.error("no return");
    }

    private void checkPool(TorchModule pool) throws TorchFormatException {
        Call c = findCall(forward(pool), "torch.adaptive_avg_pool2d");
        if (c.args().size() != 2 || !(c.args().get(1) instanceof ListE l) || l.items().size() != 2 || !isInt(l.items().get(0), 1) || !isInt(l.items().get(1), 1)) {
            throw fail(pool.path() + ": expected torch.adaptive_avg_pool2d(x, [1, 1])");
        }
    }

    // ------------------------------------------------------------------------------------ conv and BN

    private ConvBn branchConv(TorchModule seq, boolean relu) throws TorchFormatException {
        requireClass(seq, "Sequential");
        int n = seq.children().size();
        if (n != (relu ? 3 : 2)) throw fail(seq.path() + " has " + seq.children().keySet() + ", expected Conv2d, BatchNorm2d" + (relu ? ", ReLU" : ""));
        if (relu) requireClass(seq.child("2"), "ReLU");
        return convBn(seq.child("0"), seq.child("1"));
    }

    private ConvBn convBn(TorchModule conv, TorchModule bn) throws TorchFormatException {
        requireClass(conv, "Conv2d");
        requireClass(bn, "BatchNorm2d");
        Forward cf = forward(conv);
        Call c = findCall(cf, "torch._convolution");
        // _convolution(input, weight, bias, stride, padding, dilation, transposed, output_padding, groups, ...)
        if (c.args().size() < 9) throw cf.error("torch._convolution with " + c.args().size() + " arguments, expected at least 9");
        int stride = square(cf, c.args().get(3), "stride"), padding = square(cf, c.args().get(4), "padding");
        if (square(cf, c.args().get(5), "dilation") != 1 || !isName(c.args().get(6), "False") || !isInt(c.args().get(8), 1)) {
            throw cf.error("only plain convolutions are supported (dilation 1, not transposed, groups 1)");
        }
        Tensor w = floats(conv.tensor("weight"), conv, "weight");
        if (w.rank() != 4 || w.dim(2) != w.dim(3)) throw fail(conv.path() + ".weight is " + w.shape() + ", expected (out, in, k, k)");
        Tensor bias = null;
        if (!isName(c.args().get(2), "None")) {
            bias = floats(conv.tensor("bias"), conv, "bias");
            if (bias.rank() != 1 || bias.dim(0) != w.dim(0)) throw fail(conv.path() + ".bias is " + bias.shape() + " for weight " + w.shape());
        }
        Forward bf = forward(bn);
        Call b = findCall(bf, "torch.batch_norm");
        // batch_norm(input, weight, bias, running_mean, running_var, training, momentum, eps, cudnn_enabled)
        if (b.args().size() != 9 || !isName(b.args().get(5), "False") || !(b.args().get(7) instanceof Num eps)) {
            throw bf.error("expected torch.batch_norm(x, weight, bias, running_mean, running_var, False, momentum, eps, cudnn) in eval mode");
        }
        float e;
        try {
            e = Float.parseFloat(eps.text());
        } catch (NumberFormatException ex) {
            throw bf.error("eps '" + eps.text() + "' is not a number");
        }
        if (!(e > 0) || Float.isInfinite(e)) throw bf.error("eps " + e + " is not positive");
        BatchNorm norm = new BatchNorm(floats(bn.tensor("weight"), bn, "weight"), floats(bn.tensor("bias"), bn, "bias"),
                floats(bn.tensor("running_mean"), bn, "running_mean"), floats(bn.tensor("running_var"), bn, "running_var"), e);
        for (Tensor t : new Tensor[] {norm.weight(), norm.bias(), norm.runningMean(), norm.runningVar()}) {
            if (t.rank() != 1 || t.dim(0) != w.dim(0)) throw fail(bn.path() + " has a parameter of shape " + t.shape() + " after a conv with " + w.dim(0) + " filters");
        }
        if (stride < 1 || padding < 0 || padding >= w.dim(2) || w.dim(2) < 1) throw cf.error("stride " + stride + ", padding " + padding + " for a " + w.dim(2) + "x" + w.dim(2) + " kernel");
        return new ConvBn(conv.path(), w, bias, stride, padding, norm);
    }

    private void checkBranch(ConvBn conv, int inputs, String name) throws TorchFormatException {
        if (conv.inChannels() != inputs) throw fail(name + " weight " + conv.weight().shape() + " takes " + conv.inChannels() + " channels but its gather gives " + inputs);
    }

    // ------------------------------------------------------------------------------------ helpers

    private Forward forward(TorchModule m) throws TorchFormatException {
        Forward f = forwards.get(m.className());
        if (f == null) {
            f = TorchScriptCode.forward(archive, m.className());
            forwards.put(m.className(), f);
        }
        return f;
    }

    private static Call findCall(Forward f, String fn) throws TorchFormatException {
        Call found = null;
        for (Statement s : f.body()) {
            if (s.value() instanceof Call c && fn.equals(TorchScriptCode.dotted(c.fn()))) {
                if (found != null) throw f.error(s, "calls " + fn + " twice");
                found = c;
            }
        }
        if (found == null) throw f.error("no " + fn + " call");
        return found;
    }

    private TorchTensor constant(Forward f, Statement s, Expr e) throws TorchFormatException {
        String d = TorchScriptCode.dotted(e);
        if (d == null || !d.matches("CONSTANTS\\.c[0-9]{1,9}")) throw f.error(s, "expected CONSTANTS.c<i>, found " + e);
        TorchTensor t = archive.constantTensor(Integer.parseInt(d.substring(11)));
        if (t.dtype() != TorchDType.INT64) throw f.error(s, d + " is " + t.dtype() + ", expected an INT64 index tensor");
        return t;
    }

    /** The values of an index constant, each checked to lie in [0, width). */
    private static int[] indices(TorchTensor t, int width, String what) throws TorchFormatException {
        long[] v = t.toLongs();
        int[] out = new int[v.length];
        for (int i = 0; i < v.length; i++) {
            if (v[i] < 0 || v[i] >= width) throw new TorchFormatException(what + ": index " + v[i] + " at position " + i + " of " + t + " is outside [0, " + width + ")");
            out[i] = (int) v[i];
        }
        if (out.length == 0) throw new TorchFormatException(what + ": empty index list " + t);
        return out;
    }

    private static Tensor floats(TorchTensor t, TorchModule m, String name) throws TorchFormatException {
        if (t.dtype() != TorchDType.FLOAT32) throw new TorchFormatException(m.path() + "." + name + " is " + t.dtype() + ", expected FLOAT32");
        return t.toTensor();
    }

    private static int square(Forward f, Expr e, String what) throws TorchFormatException {
        if (e instanceof ListE l && l.items().size() == 2 && l.items().get(0) instanceof Num a && l.items().get(1) instanceof Num b && a.text().equals(b.text())
                && a.text().matches("[0-9]{1,4}")) {
            return Integer.parseInt(a.text());
        }
        throw f.error(what + " " + e + " is not [n, n]");
    }

    private static boolean isName(Expr e, String id) { return e instanceof Name n && n.id().equals(id); }

    private static boolean isInt(Expr e, int v) { return e instanceof Num n && n.text().equals(Integer.toString(v)); }

    private void requireClass(TorchModule m, String simpleName) throws TorchFormatException {
        if (!m.simpleName().equals(simpleName)) throw fail("module '" + m.path() + "' is " + m.className() + ", expected a " + simpleName);
    }

    private TorchFormatException fail(String msg) { return new TorchFormatException(where + ": " + msg); }
}
