package ai.bonsai.cuda;

/** Packs shapes and strides into the kernels' by-value structs {@code Dims {rank, size[8]}} and {@code Strides {s[8]}}. */
final class Shape8 {
    static final int MAX_RANK = 8;

    private final int[] dims;

    private Shape8(int[] dims) { this.dims = dims; }

    static Shape8 collapse(int[] outDims) { return new Shape8(dims(outDims)); }

    int[] dims() { return dims; }

    /** {rank, size[0..7]}. */
    static int[] dims(int[] d) {
        if (d.length > MAX_RANK) throw new IllegalArgumentException("rank " + d.length + " exceeds the kernels' " + MAX_RANK);
        int[] out = new int[1 + MAX_RANK];
        out[0] = d.length;
        System.arraycopy(d, 0, out, 1, d.length);
        for (int i = d.length; i < MAX_RANK; i++) out[1 + i] = 1;
        return out;
    }

    static int[] pad(int[] s) {
        if (s.length > MAX_RANK) throw new IllegalArgumentException("rank " + s.length + " exceeds the kernels' " + MAX_RANK);
        return java.util.Arrays.copyOf(s, MAX_RANK);
    }

    static int[] contiguousStrides(int[] d) {
        int[] s = new int[d.length];
        int acc = 1;
        for (int i = d.length - 1; i >= 0; i--) { s[i] = acc; acc *= d[i]; }
        return s;
    }

    /** Strides of a tensor of dims {@code d} (right-aligned to out's rank) read at out's indices: 0 where it broadcasts. */
    static int[] broadcastStrides(int[] d, int[] out) {
        int[] s = contiguousStrides(d);
        int[] r = new int[MAX_RANK];
        for (int i = 0; i < d.length; i++) r[i] = d[i] == 1 && out[i] != 1 ? 0 : s[i];
        return r;
    }
}
