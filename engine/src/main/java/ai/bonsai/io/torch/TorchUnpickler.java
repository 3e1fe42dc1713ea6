package ai.bonsai.io.torch;

import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * A restricted unpickler for the {@code data.pkl} and {@code constants.pkl} of TorchScript archives and the
 * {@code data.pkl} of {@code torch.save} state dicts ({@link TorchStateDict}): pickle protocol 2, written by hand,
 * executing nothing. It is a stack machine over the opcodes below; the only
 * "calls" it performs are the fixed few of the allowlist, each implemented here in Java:
 *
 * <ul>
 *   <li>{@code torch._utils._rebuild_tensor_v2} (REDUCE): (storage, offset, size, stride, requires_grad,
 *       hooks[, metadata]) becomes a {@link TorchTensor}, bounds-checked against the storage;</li>
 *   <li>{@code torch._utils._rebuild_parameter} (REDUCE): (tensor, requires_grad, hooks) becomes the tensor
 *       itself, as a {@code torch.save} of {@code nn.Parameter}s writes them;</li>
 *   <li>{@code collections.OrderedDict} (REDUCE with no arguments): an empty map (the hooks argument, and the
 *       state dict of {@code torch.save(model.state_dict(), f)}); a BUILD on such a map with a dict of string
 *       keys is accepted and its state dropped: it is the {@code _metadata} attribute (per-module version
 *       numbers), which only PyTorch's own loader reads;</li>
 *   <li>{@code torch.FloatStorage}, {@code torch.LongStorage}, {@code torch.DoubleStorage},
 *       {@code torch.HalfStorage}, {@code torch.BFloat16Storage}: only inside a persistent id
 *       {@code ('storage', type, key, location, numel)} (BINPERSID), which the {@link StorageResolver} turns
 *       into a lazily read {@link TorchStorage};</li>
 *   <li>{@code __torch__.<module> <Class>} (NEWOBJ with no arguments, then BUILD with a dict of attributes):
 *       an inert {@link TorchObject} holding the class name; TorchScript module classes (CifarResNet,
 *       Compactblock, Conv2d, ...) all live under {@code __torch__}.</li>
 * </ul>
 * Any other global, a REDUCE/NEWOBJ/BUILD on a target not listed, or an opcode not listed ends in a
 * {@link TorchFormatException} naming it and the byte offset.
 *
 * <p>Opcodes: PROTO (2 or less), STOP, MARK, POP, POP_MARK, DUP, NONE, NEWTRUE, NEWFALSE, BININT, BININT1,
 * BININT2, LONG1 (at most 8 bytes), BINFLOAT, BINUNICODE, SHORT_BINUNICODE, EMPTY_TUPLE, TUPLE, TUPLE1-3,
 * EMPTY_LIST, LIST, APPEND, APPENDS, EMPTY_DICT, DICT, SETITEM, SETITEMS, GLOBAL, REDUCE, NEWOBJ, BUILD,
 * BINPERSID, BINPUT, LONG_BINPUT, BINGET, LONG_BINGET.
 *
 * <p>Values: None is null; ints are Long; floats Double; strings String; tuples unmodifiable Lists; lists
 * ArrayLists; dicts LinkedHashMaps, whose keys must be None, bool, int, float or str (so that no container is
 * ever hashed: a cyclic or very deep structure can never overflow the stack here). The memo size, stack
 * size, MARK depth, string lengths and the approximate total allocation are bounded by {@link TorchLimits}.
 */
public final class TorchUnpickler {
    /** The exact globals accepted, besides any class under {@code __torch__.}. */
    public static final Set<String> ALLOWED_GLOBALS = Set.of(
            "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_parameter", "collections.OrderedDict",
            "torch.FloatStorage", "torch.LongStorage", "torch.DoubleStorage", "torch.HalfStorage", "torch.BFloat16Storage");
    /** The package of TorchScript's own classes, accepted as inert records. */
    public static final String TORCHSCRIPT_PREFIX = "__torch__.";

    /** Resolves a persistent id to a storage, checking that the entry exists and has the declared size. */
    @FunctionalInterface
    public interface StorageResolver {
        TorchStorage storage(TorchDType dtype, String key, long numel) throws TorchFormatException;
    }

    /** A resolved global: only ever lives on the stack or in the memo. */
    private record Global(String qualified) {}

    private static final Object NO_VALUE = new Object();

    private final byte[] in;
    private final String where;
    private final TorchLimits limits;
    private final StorageResolver resolver;
    private final ArrayList<Object> stack = new ArrayList<>();
    private final int[] marks;
    private int markDepth;
    private final Map<Long, Object> memo = new HashMap<>();
    /** The maps that collections.OrderedDict made: the only dicts a BUILD may target. */
    private final Set<Object> orderedDicts = Collections.newSetFromMap(new IdentityHashMap<>());
    private long allocated;
    private int pos, opAt;

    private TorchUnpickler(byte[] in, String where, TorchLimits limits, StorageResolver resolver) {
        this.in = in;
        this.where = where;
        this.limits = limits;
        this.resolver = resolver;
        this.marks = new int[limits.maxMarkDepth()];
    }

    /**
     * Runs the pickle {@code in} to its STOP and returns the value it leaves. {@code where} names the file and
     * entry in messages; {@code resolver} serves persistent ids (none allowed when it is null).
     */
    public static Object load(byte[] in, String where, TorchLimits limits, StorageResolver resolver) throws TorchFormatException {
        return new TorchUnpickler(in, where, limits, resolver).run();
    }

    private Object run() throws TorchFormatException {
        while (true) {
            opAt = pos;
            int op = u8();
            switch (op) {
                case 0x80 -> { int v = u8(); if (v > 2) throw fail("pickle protocol " + v + " is not supported (expected 2 or less)"); }
                case '.' -> {
                    if (markDepth != 0) throw fail("STOP with " + markDepth + " unclosed MARK(s)");
                    if (stack.size() != 1) throw fail("STOP with " + stack.size() + " values on the stack, expected 1");
                    if (pos != in.length) throw fail((in.length - pos) + " bytes after STOP");
                    Object v = stack.get(0);
                    if (v instanceof Global g) throw fail("result is the bare global " + g.qualified());
                    return v;
                }
                case '(' -> {
                    if (markDepth == marks.length) throw fail("more than " + marks.length + " nested MARKs");
                    marks[markDepth++] = stack.size();
                }
                case '0' -> pop();
                case '1' -> popMark();
                case '2' -> push(peek());
                case 'N' -> push(null);
                case 0x88 -> push(Boolean.TRUE);
                case 0x89 -> push(Boolean.FALSE);
                case 'J' -> push((long) le(4));
                case 'K' -> push((long) u8());
                case 'M' -> push((long) (le(2) & 0xFFFF));
                case 0x8a -> {
                    int n = u8();
                    if (n > 8) throw fail("LONG1 of " + n + " bytes (at most 8 supported)");
                    long v = 0;
                    for (int i = 0; i < n; i++) v |= (long) u8() << (8 * i);
                    if (n > 0 && n < 8 && (v >> (8 * n - 1) & 1) != 0) v |= -1L << (8 * n);   // sign-extend
                    push(v);
                }
                case 'G' -> {
                    long bits = 0;
                    for (int i = 0; i < 8; i++) bits = bits << 8 | u8();                  // big-endian
                    push(Double.longBitsToDouble(bits));
                }
                case 'X' -> push(utf8(le(4) & 0xFFFFFFFFL));
                case 0x8c -> push(utf8(u8()));
                case ')' -> push(tuple(List.of()));
                case 't' -> push(tuple(popMark()));
                case 0x85 -> { Object a = pop(); push(tuple(list1(a))); }
                case 0x86 -> { Object b = pop(), a = pop(); push(tuple(list2(a, b))); }
                case 0x87 -> { Object c = pop(), b = pop(), a = pop(); ArrayList<Object> l = list2(a, b); l.add(c); push(tuple(l)); }
                case ']' -> push(newList(new ArrayList<>()));
                case 'l' -> push(newList(popMark()));
                case 'a' -> {
                    Object v = pop();
                    if (v instanceof Global g) throw fail("global " + g.qualified() + " appended to a list");
                    listTop().add(v);
                    charge(16);
                }
                case 'e' -> { List<Object> items = noGlobals(popMark(), "a list"); listTop().addAll(items); charge(16L * items.size()); }
                case '}' -> push(newDict());
                case 'd' -> { List<Object> items = popMark(); Map<Object, Object> m = newDict(); putAll(m, items); push(m); }
                case 's' -> { Object v = pop(), k = pop(); putAll(dictTop(), list2(k, v)); }
                case 'u' -> { List<Object> items = popMark(); putAll(dictTop(), items); }
                case 'c' -> push(global(line(), line()));
                case 'R' -> { Object args = pop(), fn = pop(); push(reduce(fn, args)); }
                case 0x81 -> { Object args = pop(), cls = pop(); push(newObj(cls, args)); }
                case 'b' -> { Object state = pop(); build(peek(), state); }
                case 'Q' -> push(persistent(pop()));
                case 'q' -> memoPut(u8());
                case 'r' -> memoPut(le(4) & 0xFFFFFFFFL);
                case 'h' -> push(memoGet(u8()));
                case 'j' -> push(memoGet(le(4) & 0xFFFFFFFFL));
                default -> throw fail("opcode 0x" + Integer.toHexString(op) + (op >= 0x20 && op < 0x7f ? " ('" + (char) op + "')" : "") + " is not supported");
            }
        }
    }

    // ------------------------------------------------------------------------------------ the allowlist

    private Object global(String module, String name) throws TorchFormatException {
        String q = module + "." + name;
        boolean torchScriptClass = module.startsWith(TORCHSCRIPT_PREFIX) && isIdentifierPath(module) && isIdentifierPath(name) && !name.contains(".");
        if (!ALLOWED_GLOBALS.contains(q) && !torchScriptClass) {
            throw fail("global '" + q + "' is not allowed (allowed: " + new java.util.TreeSet<>(ALLOWED_GLOBALS) + " and classes under " + TORCHSCRIPT_PREFIX + ")");
        }
        return new Global(q);
    }

    private Object reduce(Object fn, Object args) throws TorchFormatException {
        if (!(fn instanceof Global g)) throw fail("REDUCE on " + describe(fn) + ", expected an allowed global");
        List<Object> a = asTuple(args, "REDUCE arguments of " + g.qualified());
        switch (g.qualified()) {
            case "collections.OrderedDict" -> {
                if (!a.isEmpty()) throw fail("collections.OrderedDict with " + a.size() + " arguments, expected none");
                Map<Object, Object> d = newDict();
                orderedDicts.add(d);
                return d;
            }
            case "torch._utils._rebuild_parameter" -> {
                if (a.size() != 3) throw fail("_rebuild_parameter with " + a.size() + " arguments, expected 3");
                if (!(a.get(0) instanceof TorchTensor t)) throw fail("_rebuild_parameter: argument 0 is " + describe(a.get(0)) + ", expected a tensor");
                if (!(a.get(1) instanceof Boolean)) throw fail("_rebuild_parameter: requires_grad is " + describe(a.get(1)) + ", expected a bool");
                if (!(a.get(2) instanceof Map<?, ?> hooks) || !hooks.isEmpty()) throw fail("_rebuild_parameter: backward hooks are " + describe(a.get(2)) + ", expected an empty OrderedDict");
                return t;
            }
            case "torch._utils._rebuild_tensor_v2" -> {
                if (a.size() != 6 && a.size() != 7) throw fail("_rebuild_tensor_v2 with " + a.size() + " arguments, expected 6 or 7");
                if (!(a.get(0) instanceof TorchStorage s)) throw fail("_rebuild_tensor_v2: argument 0 is " + describe(a.get(0)) + ", expected a storage");
                long offset = asLong(a.get(1), "_rebuild_tensor_v2 storage offset");
                long[] size = longs(a.get(2), "_rebuild_tensor_v2 size");
                long[] stride = longs(a.get(3), "_rebuild_tensor_v2 stride");
                if (!(a.get(4) instanceof Boolean)) throw fail("_rebuild_tensor_v2: requires_grad is " + describe(a.get(4)) + ", expected a bool");
                if (!(a.get(5) instanceof Map<?, ?> hooks) || !hooks.isEmpty()) throw fail("_rebuild_tensor_v2: backward hooks are " + describe(a.get(5)) + ", expected an empty OrderedDict");
                if (a.size() == 7 && a.get(6) != null && !(a.get(6) instanceof Map<?, ?> m && m.isEmpty())) throw fail("_rebuild_tensor_v2: metadata " + describe(a.get(6)) + " is not supported");
                charge(64L + 16L * size.length);
                return TorchTensor.of(s, offset, size, stride, limits.maxRank(), where + " (tensor at pickle offset " + opAt + ")");
            }
            default -> throw fail("REDUCE on global '" + g.qualified() + "', which may not be called");
        }
    }

    private Object newObj(Object cls, Object args) throws TorchFormatException {
        if (!(cls instanceof Global g) || !g.qualified().startsWith(TORCHSCRIPT_PREFIX)) {
            throw fail("NEWOBJ on " + describe(cls) + ", expected a class under " + TORCHSCRIPT_PREFIX);
        }
        if (!asTuple(args, "NEWOBJ arguments").isEmpty()) throw fail("NEWOBJ of " + g.qualified() + " with arguments, expected none");
        charge(64);
        return new TorchObject(g.qualified());
    }

    private void build(Object target, Object state) throws TorchFormatException {
        if (target instanceof Map<?, ?> && orderedDicts.contains(target)) {
            // An OrderedDict's instance attributes (a state dict's _metadata): checked for shape, then dropped.
            if (!(state instanceof Map<?, ?> m)) throw fail("BUILD of an OrderedDict with state " + describe(state) + ", expected a dict of attributes");
            for (Object k : m.keySet()) if (!(k instanceof String)) throw fail("BUILD of an OrderedDict: attribute name " + describe(k) + " is not a string");
            orderedDicts.remove(target);   // at most once, as for objects
            return;
        }
        if (!(target instanceof TorchObject o)) throw fail("BUILD on " + describe(target) + ", expected a " + TORCHSCRIPT_PREFIX + " object");
        if (o.isBuilt()) throw fail("BUILD twice on " + o.className());
        if (!(state instanceof Map<?, ?> m)) throw fail("BUILD of " + o.className() + " with state " + describe(state) + ", expected a dict of attributes");
        Map<String, Object> attrs = new LinkedHashMap<>();
        for (Map.Entry<?, ?> e : m.entrySet()) {
            if (!(e.getKey() instanceof String k)) throw fail("BUILD of " + o.className() + ": attribute name " + describe(e.getKey()) + " is not a string");
            attrs.put(k, e.getValue());
        }
        o.build(attrs);
    }

    private Object persistent(Object pid) throws TorchFormatException {
        List<Object> t = asTuple(pid, "persistent id");
        if (t.size() != 5 || !"storage".equals(t.get(0))) throw fail("persistent id " + describe(pid) + ", expected ('storage', type, key, location, numel)");
        if (!(t.get(1) instanceof Global g) || !g.qualified().startsWith("torch.") || TorchDType.ofStorageClass(g.qualified().substring(6)) == null) {
            throw fail("persistent id storage type " + describe(t.get(1)) + ", expected one of torch.FloatStorage, LongStorage, DoubleStorage, HalfStorage, BFloat16Storage");
        }
        TorchDType dtype = TorchDType.ofStorageClass(g.qualified().substring(6));
        if (!(t.get(2) instanceof String key) || key.isEmpty() || key.length() > 12 || !key.chars().allMatch(c -> c >= '0' && c <= '9')) {
            throw fail("persistent id key " + describe(t.get(2)) + ", expected a decimal storage number");
        }
        if (!(t.get(3) instanceof String)) throw fail("persistent id location " + describe(t.get(3)) + ", expected a string");
        long numel = asLong(t.get(4), "persistent id numel");
        if (numel < 0) throw fail("persistent id numel " + numel + " is negative");
        if (resolver == null) throw fail("persistent id for storage " + key + ", but this pickle may not reference storages");
        return resolver.storage(dtype, key, numel);
    }

    // ------------------------------------------------------------------------------------ stack, memo, values

    private void push(Object v) throws TorchFormatException {
        if (stack.size() >= limits.maxStack()) throw fail("stack of more than " + limits.maxStack() + " values");
        stack.add(v);
        charge(8);
    }

    private Object pop() throws TorchFormatException {
        if (stack.size() <= (markDepth == 0 ? 0 : marks[markDepth - 1])) throw fail("pop from an empty stack (or across a MARK)");
        return stack.remove(stack.size() - 1);
    }

    private Object peek() throws TorchFormatException {
        if (stack.size() <= (markDepth == 0 ? 0 : marks[markDepth - 1])) throw fail("read from an empty stack (or across a MARK)");
        return stack.get(stack.size() - 1);
    }

    private ArrayList<Object> popMark() throws TorchFormatException {
        if (markDepth == 0) throw fail("no MARK to pop to");
        int m = marks[--markDepth];
        List<Object> sub = stack.subList(m, stack.size());
        ArrayList<Object> items = new ArrayList<>(sub);
        sub.clear();
        return items;
    }

    private void memoPut(long index) throws TorchFormatException {
        if (index >= limits.maxMemo()) throw fail("memo index " + index + " is beyond the limit of " + limits.maxMemo());
        if (memo.size() >= limits.maxMemo() && !memo.containsKey(index)) throw fail("memo of more than " + limits.maxMemo() + " entries");
        memo.put(index, peek());
        charge(48);
    }

    private Object memoGet(long index) throws TorchFormatException {
        Object v = memo.getOrDefault(index, NO_VALUE);
        if (v == NO_VALUE) throw fail("memo index " + index + " was never stored");
        return v;
    }

    private List<Object> tuple(List<Object> items) throws TorchFormatException {
        // Globals are values only as the storage type inside a persistent id tuple.
        for (Object o : items) {
            if (o instanceof Global g && !(g.qualified().startsWith("torch.") && TorchDType.ofStorageClass(g.qualified().substring(6)) != null)) {
                throw fail("global " + g.qualified() + " inside a tuple");
            }
        }
        charge(24 + 8L * items.size());
        return Collections.unmodifiableList(items instanceof ArrayList<Object> ? items : new ArrayList<>(items));
    }

    private ArrayList<Object> newList(ArrayList<Object> items) throws TorchFormatException {
        noGlobals(items, "a list");
        charge(24 + 8L * items.size());
        return items;
    }

    private <T extends List<Object>> T noGlobals(T items, String what) throws TorchFormatException {
        for (Object o : items) if (o instanceof Global g) throw fail("global " + g.qualified() + " stored in " + what);
        return items;
    }

    private Map<Object, Object> newDict() throws TorchFormatException {
        charge(64);
        return new LinkedHashMap<>();
    }

    @SuppressWarnings("unchecked")
    private List<Object> listTop() throws TorchFormatException {
        Object t = peek();
        if (t instanceof ArrayList<?> l) return (List<Object>) l;
        throw fail("APPEND to " + describe(t) + ", expected a list");
    }

    @SuppressWarnings("unchecked")
    private Map<Object, Object> dictTop() throws TorchFormatException {
        Object t = peek();
        if (t instanceof LinkedHashMap<?, ?> m) return (Map<Object, Object>) m;
        throw fail("SETITEM on " + describe(t) + ", expected a dict");
    }

    private void putAll(Map<Object, Object> m, List<Object> items) throws TorchFormatException {
        if (items.size() % 2 != 0) throw fail("odd number of dict items (" + items.size() + ")");
        for (int i = 0; i < items.size(); i += 2) {
            Object k = items.get(i);
            if (!(k == null || k instanceof String || k instanceof Long || k instanceof Boolean || k instanceof Double)) {
                throw fail("dict key " + describe(k) + " (only None, bool, int, float and str keys are supported)");
            }
            if (items.get(i + 1) instanceof Global g) throw fail("global " + g.qualified() + " stored in a dict");
            m.put(k, items.get(i + 1));
            charge(48);
        }
    }

    private void charge(long bytes) throws TorchFormatException {
        allocated += bytes;
        if (allocated > limits.maxPickleAllocation()) throw fail("values take more than the limit of " + limits.maxPickleAllocation() + " bytes");
    }

    // ------------------------------------------------------------------------------------ bytes

    private int u8() throws TorchFormatException {
        if (pos >= in.length) throw truncated(1);
        return in[pos++] & 0xFF;
    }

    private int le(int n) throws TorchFormatException {
        if (in.length - pos < n) throw truncated(n);
        int v = 0;
        for (int i = 0; i < n; i++) v |= (in[pos + i] & 0xFF) << (8 * i);
        pos += n;
        return v;
    }

    private String utf8(long n) throws TorchFormatException {
        if (n > limits.maxStringBytes()) throw fail("string of " + n + " bytes is longer than the limit of " + limits.maxStringBytes());
        if (in.length - pos < n) throw truncated(n);
        charge(40 + 2 * n);
        try {
            String s = StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT).onUnmappableCharacter(CodingErrorAction.REPORT)
                    .decode(ByteBuffer.wrap(in, pos, (int) n)).toString();
            pos += (int) n;
            return s;
        } catch (CharacterCodingException e) {
            throw fail("string of " + n + " bytes is not valid UTF-8");
        }
    }

    /** A GLOBAL operand: printable ASCII up to a newline, at most 256 bytes. */
    private String line() throws TorchFormatException {
        int start = pos;
        while (true) {
            if (pos >= in.length) throw truncated(1);
            int c = in[pos++] & 0xFF;
            if (c == '\n') return new String(in, start, pos - 1 - start, StandardCharsets.US_ASCII);
            if (c < 0x20 || c >= 0x7f) throw fail("GLOBAL name has byte 0x" + Integer.toHexString(c));
            if (pos - start > 256) throw fail("GLOBAL name longer than 256 bytes");
        }
    }

    private static boolean isIdentifierPath(String s) {
        if (s.isEmpty() || s.startsWith(".") || s.endsWith(".") || s.contains("..")) return false;
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (!(Character.isLetterOrDigit(c) && c < 128 || c == '_' || c == '.')) return false;
        }
        return true;
    }

    private List<Object> asTuple(Object v, String what) throws TorchFormatException {
        if (v instanceof List<?> l && !(v instanceof ArrayList<?>)) {
            @SuppressWarnings("unchecked") List<Object> t = (List<Object>) l;
            return t;
        }
        throw fail(what + " is " + describe(v) + ", expected a tuple");
    }

    private long asLong(Object v, String what) throws TorchFormatException {
        if (v instanceof Long l) return l;
        throw fail(what + " is " + describe(v) + ", expected an int");
    }

    private long[] longs(Object v, String what) throws TorchFormatException {
        List<Object> t = asTuple(v, what);
        if (t.size() > limits.maxRank()) throw fail(what + " has " + t.size() + " dimensions, more than the limit of " + limits.maxRank());
        long[] out = new long[t.size()];
        for (int i = 0; i < out.length; i++) out[i] = asLong(t.get(i), what + "[" + i + "]");
        return out;
    }

    /** A short description that never descends into containers. */
    private static String describe(Object v) {
        if (v == null) return "None";
        if (v instanceof Global g) return "global " + g.qualified();
        if (v instanceof String s) return "'" + (s.length() > 40 ? s.substring(0, 40) + "..." : s) + "'";
        if (v instanceof Long || v instanceof Boolean || v instanceof Double) return v.toString();
        if (v instanceof ArrayList<?> l) return "a list of " + l.size();
        if (v instanceof List<?> l) return "a tuple of " + l.size();
        if (v instanceof Map<?, ?> m) return "a dict of " + m.size();
        return v.getClass().getSimpleName().equals("TorchObject") ? "an object of " + ((TorchObject) v).className() : "a " + v.getClass().getSimpleName();
    }

    private static <T> ArrayList<T> list1(T a) { ArrayList<T> l = new ArrayList<>(3); l.add(a); return l; }

    private static <T> ArrayList<T> list2(T a, T b) { ArrayList<T> l = new ArrayList<>(3); l.add(a); l.add(b); return l; }

    private TorchFormatException truncated(long n) {
        return new TorchFormatException(where + ": pickle truncated: needs " + n + " more byte(s) at offset " + pos + " (opcode at " + opAt + ", " + in.length + " bytes in all)");
    }

    private TorchFormatException fail(String msg) {
        return new TorchFormatException(where + ": " + msg + " (pickle opcode at offset " + opAt + ")");
    }
}
