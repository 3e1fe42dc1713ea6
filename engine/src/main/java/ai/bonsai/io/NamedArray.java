package ai.bonsai.io;

import ai.bonsai.tensor.DType;
import ai.bonsai.tensor.Shape;

import java.util.Arrays;
import java.util.Objects;

/**
 * One named array as stored in a checkpoint: a name, an element type, a shape and the elements, row-major, in
 * the Java array matching the type (float[] for FLOAT32, int[] for INT32, long[] for INT64).
 *
 * <p>The array is shared, not copied: checkpoints are large and the caller usually built the array for
 * this purpose. Equality compares contents.
 */
public final class NamedArray {
    private final String name;
    private final DType dtype;
    private final Shape shape;
    private final Object data;   // float[], int[] or long[], matching dtype

    private NamedArray(String name, DType dtype, Shape shape, Object data, int length) {
        if (name == null || name.isEmpty()) throw new IllegalArgumentException("NamedArray: name must be a non-empty string, got " + (name == null ? "null" : "''"));
        if (shape == null) throw new IllegalArgumentException("NamedArray '" + name + "': shape must not be null");
        if (length != shape.numel()) {
            throw new IllegalArgumentException("NamedArray '" + name + "': shape " + shape + " has " + shape.numel() + " elements, but the array has " + length);
        }
        this.name = name;
        this.dtype = dtype;
        this.shape = shape;
        this.data = data;
    }

    public static NamedArray ofFloats(String name, Shape shape, float[] data) {
        return new NamedArray(name, DType.FLOAT32, shape, Objects.requireNonNull(data, "data"), data.length);
    }

    public static NamedArray ofInts(String name, Shape shape, int[] data) {
        return new NamedArray(name, DType.INT32, shape, Objects.requireNonNull(data, "data"), data.length);
    }

    public static NamedArray ofLongs(String name, Shape shape, long[] data) {
        return new NamedArray(name, DType.INT64, shape, Objects.requireNonNull(data, "data"), data.length);
    }

    public String name() { return name; }

    public DType dtype() { return dtype; }

    public Shape shape() { return shape; }

    /** The elements of a FLOAT32 array. */
    public float[] floats() { return (float[]) as(DType.FLOAT32); }

    /** The elements of an INT32 array. */
    public int[] ints() { return (int[]) as(DType.INT32); }

    /** The elements of an INT64 array. */
    public long[] longs() { return (long[]) as(DType.INT64); }

    private Object as(DType wanted) {
        if (dtype != wanted) throw new IllegalStateException("NamedArray '" + name + "' holds " + dtype + ", not " + wanted);
        return data;
    }

    /** Bytes of element data in a file. */
    public long byteSize() { return (long) shape.numel() * dtype.bytes(); }

    @Override public boolean equals(Object o) {
        if (!(o instanceof NamedArray a) || !name.equals(a.name) || dtype != a.dtype || !shape.equals(a.shape)) return false;
        switch (dtype) {
            case FLOAT32: return Arrays.equals((float[]) data, (float[]) a.data);
            case INT32: return Arrays.equals((int[]) data, (int[]) a.data);
            default: return Arrays.equals((long[]) data, (long[]) a.data);
        }
    }

    @Override public int hashCode() {
        int h = Objects.hash(name, dtype, shape);
        switch (dtype) {
            case FLOAT32: return 31 * h + Arrays.hashCode((float[]) data);
            case INT32: return 31 * h + Arrays.hashCode((int[]) data);
            default: return 31 * h + Arrays.hashCode((long[]) data);
        }
    }

    @Override public String toString() { return name + " " + dtype + " " + shape; }
}
