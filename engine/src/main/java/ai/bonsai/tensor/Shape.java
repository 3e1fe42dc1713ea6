package ai.bonsai.tensor;

import java.util.Arrays;

/**
 * Immutable tensor shape (row-major). Images are NCHW.
 * Scalars have rank 0 and one element.
 */
public final class Shape {
    private final int[] dims;
    private final long numel;

    private Shape(int[] dims) {
        long n = 1;
        for (int d : dims) {
            if (d < 0) throw new IllegalArgumentException("shape " + Arrays.toString(dims) + ": negative dimension " + d);
            n = Math.multiplyExact(n, d);
        }
        if (n > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException("shape " + Arrays.toString(dims) + " has " + n + " elements; at most " + (Integer.MAX_VALUE - 8) + " are supported");
        }
        this.dims = dims;
        this.numel = n;
    }

    public static Shape of(int... dims) { return new Shape(dims.clone()); }

    public static Shape scalar() { return new Shape(new int[0]); }

    public int rank() { return dims.length; }

    /** Dimension {@code axis}; negative axes count from the end. */
    public int dim(int axis) { return dims[normalizeAxis(axis)]; }

    public int[] dims() { return dims.clone(); }

    public int numel() { return (int) numel; }

    /** Maps a possibly negative axis into [0, rank). */
    public int normalizeAxis(int axis) {
        int a = axis < 0 ? axis + dims.length : axis;
        if (a < 0 || a >= dims.length) {
            throw new IllegalArgumentException("axis " + axis + " is out of range for shape " + this);
        }
        return a;
    }

    /** Row-major strides, in elements. */
    public int[] strides() {
        int[] s = new int[dims.length];
        int acc = 1;
        for (int i = dims.length - 1; i >= 0; i--) { s[i] = acc; acc *= dims[i]; }
        return s;
    }

    /** Product of dimensions in [from, to). */
    public int size(int from, int to) {
        int n = 1;
        for (int i = from; i < to; i++) n *= dims[i];
        return n;
    }

    /**
     * NumPy broadcasting of two shapes.
     * @throws IllegalArgumentException naming {@code op} and both shapes when they do not broadcast
     */
    public static Shape broadcast(String op, Shape a, Shape b) {
        int r = Math.max(a.rank(), b.rank());
        int[] out = new int[r];
        for (int i = 0; i < r; i++) {
            int da = i - (r - a.rank()) >= 0 ? a.dims[i - (r - a.rank())] : 1;
            int db = i - (r - b.rank()) >= 0 ? b.dims[i - (r - b.rank())] : 1;
            if (da != db && da != 1 && db != 1) {
                throw new IllegalArgumentException(op + ": shapes " + a + " and " + b + " do not broadcast (dimension " + i + ": " + da + " vs " + db + ")");
            }
            out[i] = da == 1 ? db : da;
        }
        return new Shape(out);
    }

    /** Infers one -1 dimension for reshape; checks the element count. */
    public Shape reshape(int... newDims) {
        int[] d = newDims.clone();
        int infer = -1;
        long known = 1;
        for (int i = 0; i < d.length; i++) {
            if (d[i] == -1) {
                if (infer >= 0) throw new IllegalArgumentException("reshape " + this + " -> " + Arrays.toString(newDims) + ": more than one -1");
                infer = i;
            } else if (d[i] < 0) {
                throw new IllegalArgumentException("reshape " + this + " -> " + Arrays.toString(newDims) + ": negative dimension");
            } else {
                known *= d[i];
            }
        }
        if (infer >= 0) {
            if (known == 0 || numel % known != 0) {
                throw new IllegalArgumentException("reshape: can't reshape " + this + " (" + numel + " elements) -> " + Arrays.toString(newDims));
            }
            d[infer] = (int) (numel / known);
            known *= d[infer];
        }
        if (known != numel) {
            throw new IllegalArgumentException("reshape: can't reshape " + this + " (" + numel + " elements) -> " + Arrays.toString(newDims) + " (" + known + " elements)");
        }
        return new Shape(d);
    }

    @Override public boolean equals(Object o) { return o instanceof Shape s && Arrays.equals(dims, s.dims); }

    @Override public int hashCode() { return Arrays.hashCode(dims); }

    @Override public String toString() { return Arrays.toString(dims); }
}
