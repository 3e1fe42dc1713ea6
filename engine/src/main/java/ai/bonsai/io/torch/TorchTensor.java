package ai.bonsai.io.torch;

import ai.bonsai.tensor.Tensor;

import java.util.Arrays;

/**
 * A tensor as the pickle describes it ({@code torch._utils._rebuild_tensor_v2}): a view of a
 * {@link TorchStorage} with a shape, strides and an offset, all checked against the storage when it was
 * built. Nothing is read until {@link #toFloats()}, {@link #toLongs()} or {@link #toTensor()} asks; these
 * return contiguous row-major copies whatever the strides.
 */
public final class TorchTensor {
    private final TorchStorage storage;
    private final int[] shape;
    private final long[] stride;
    private final long offset;
    private final int numel;

    private TorchTensor(TorchStorage storage, int[] shape, long[] stride, long offset, int numel) {
        this.storage = storage;
        this.shape = shape;
        this.stride = stride;
        this.offset = offset;
        this.numel = numel;
    }

    /**
     * Checks a view: non-negative sizes, strides and offset, at most {@code maxRank} dimensions, fewer than
     * 2^31 elements, and every element's position inside the storage.
     */
    static TorchTensor of(TorchStorage storage, long offset, long[] size, long[] stride, int maxRank, String where) throws TorchFormatException {
        if (size.length != stride.length) throw new TorchFormatException(where + ": tensor size " + Arrays.toString(size) + " and stride " + Arrays.toString(stride) + " differ in rank");
        if (size.length > maxRank) throw new TorchFormatException(where + ": tensor rank " + size.length + " is more than the limit of " + maxRank);
        if (offset < 0) throw new TorchFormatException(where + ": negative storage offset " + offset);
        int[] dims = new int[size.length];
        long n = 1, last = offset;                     // last = position of the last element
        try {
            for (int i = 0; i < size.length; i++) {
                if (size[i] < 0 || size[i] > Integer.MAX_VALUE || stride[i] < 0) {
                    throw new TorchFormatException(where + ": tensor size " + Arrays.toString(size) + " / stride " + Arrays.toString(stride) + " has a negative or oversized entry");
                }
                dims[i] = (int) size[i];
                n = Math.multiplyExact(n, size[i]);
                if (size[i] > 0) last = Math.addExact(last, Math.multiplyExact(size[i] - 1, stride[i]));
            }
        } catch (ArithmeticException e) {
            throw new TorchFormatException(where + ": tensor size " + Arrays.toString(size) + " / stride " + Arrays.toString(stride) + " overflows");
        }
        if (n > Integer.MAX_VALUE - 8) throw new TorchFormatException(where + ": tensor of " + n + " elements is too large");
        if (n > 0 && last >= storage.numel()) {
            throw new TorchFormatException(where + ": tensor size " + Arrays.toString(size) + ", stride " + Arrays.toString(stride) + ", offset " + offset
                    + " reaches element " + last + " of " + storage + " which has " + storage.numel());
        }
        return new TorchTensor(storage, dims, stride.clone(), offset, (int) n);
    }

    public TorchDType dtype() { return storage.dtype(); }

    public int[] shape() { return shape.clone(); }

    public long[] stride() { return stride.clone(); }

    public long offset() { return offset; }

    public int numel() { return numel; }

    public int rank() { return shape.length; }

    public TorchStorage storage() { return storage; }

    /**
     * The elements in row-major order as float32; the tensor must be floating point. FLOAT64 is rounded to
     * nearest; FLOAT16 and BFLOAT16 convert exactly.
     */
    public float[] toFloats() throws TorchFormatException {
        if (!dtype().isFloating()) throw new TorchFormatException(storage.entry() + ": tensor is " + dtype() + ", expected a floating-point type");
        byte[] b = storage.bytes();
        float[] out = new float[numel];
        long[] pos = positions();
        switch (dtype()) {
            case FLOAT32 -> { for (int i = 0; i < numel; i++) out[i] = Float.intBitsToFloat(le32(b, (int) (pos[i] * 4))); }
            case FLOAT64 -> {
                for (int i = 0; i < numel; i++) {
                    int p = (int) (pos[i] * 8);
                    out[i] = (float) Double.longBitsToDouble((le32(b, p) & 0xFFFFFFFFL) | (long) le32(b, p + 4) << 32);
                }
            }
            case FLOAT16 -> { for (int i = 0; i < numel; i++) out[i] = halfToFloat(le16(b, (int) (pos[i] * 2))); }
            case BFLOAT16 -> { for (int i = 0; i < numel; i++) out[i] = Float.intBitsToFloat(le16(b, (int) (pos[i] * 2)) << 16); }
            default -> throw new AssertionError(dtype());
        }
        return out;
    }

    /** The elements in row-major order; the tensor must be INT64. */
    public long[] toLongs() throws TorchFormatException {
        require(TorchDType.INT64);
        byte[] b = storage.bytes();
        long[] out = new long[numel];
        long[] pos = positions();
        for (int i = 0; i < numel; i++) {
            int p = (int) (pos[i] * 8);
            out[i] = (le32(b, p) & 0xFFFFFFFFL) | (long) le32(b, p + 4) << 32;
        }
        return out;
    }

    /** A new contiguous CPU tensor with the same shape and values: INT64, or FLOAT32 for every floating type. */
    public Tensor toTensor() throws TorchFormatException {
        return dtype().isFloating() ? Tensor.of(toFloats(), shape) : Tensor.ofLongs(toLongs(), shape);
    }

    private void require(TorchDType t) throws TorchFormatException {
        if (dtype() != t) throw new TorchFormatException(storage.entry() + ": tensor is " + dtype() + ", expected " + t);
    }

    /** Storage element index of each element, row-major (bounds were proven in {@link #of}). */
    private long[] positions() {
        long[] pos = new long[numel];
        int[] idx = new int[shape.length];
        long p = offset;
        for (int i = 0; i < numel; i++) {
            pos[i] = p;
            for (int d = shape.length - 1; d >= 0; d--) {
                if (++idx[d] < shape[d]) { p += stride[d]; break; }
                p -= (long) (shape[d] - 1) * stride[d];
                idx[d] = 0;
            }
        }
        return pos;
    }

    /** IEEE 754 binary16 to float, exactly (Float.float16ToFloat arrives only in Java 20). */
    static float halfToFloat(int h) {
        int sign = (h & 0x8000) << 16, exp = (h >>> 10) & 0x1F, mant = h & 0x3FF;
        if (exp == 0x1F) return Float.intBitsToFloat(sign | 0x7F800000 | mant << 13);          // inf, NaN
        if (exp != 0) return Float.intBitsToFloat(sign | (exp + 112) << 23 | mant << 13);       // 127 - 15 = 112
        float sub = mant * 0x1p-24f;                                                             // subnormal or zero
        return sign != 0 ? -sub : sub;
    }

    private static int le16(byte[] b, int p) { return (b[p] & 0xFF) | (b[p + 1] & 0xFF) << 8; }

    private static int le32(byte[] b, int p) {
        return (b[p] & 0xFF) | (b[p + 1] & 0xFF) << 8 | (b[p + 2] & 0xFF) << 16 | (b[p + 3] & 0xFF) << 24;
    }

    @Override public String toString() { return dtype() + Arrays.toString(shape) + " in " + storage.entry(); }
}
