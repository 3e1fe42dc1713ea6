package ai.bonsai.cuda;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;

/**
 * The parameters of one kernel launch, each as the little-endian bytes of its C type (a device pointer is an
 * 8-byte address, an int or float 4 bytes, a struct its packed ints). The driver API takes exactly this (one
 * pointer per parameter); the emulator checks each size against the kernel's C signature.
 */
public final class KernelArgs {
    private final List<byte[]> params = new ArrayList<>();
    private final StringBuilder text = new StringBuilder();

    public KernelArgs ptr(long address) { return add(8, address, "0x" + Long.toHexString(address)); }

    public KernelArgs ptr(CudaBuffer b) { return ptr(b.address()); }

    /** A pointer to element {@code offset} of a 4-byte-element buffer. */
    public KernelArgs ptr(CudaBuffer b, long offset) { return ptr(b.address() + offset * b.elementBytes()); }

    public KernelArgs i32(int v) { return add(4, v, Integer.toString(v)); }

    public KernelArgs i64(long v) { return add(8, v, Long.toString(v)); }

    public KernelArgs f32(float v) { return add(4, Float.floatToRawIntBits(v), Float.toString(v)); }

    /** A struct of ints, passed by value (the kernel's parameter is that struct). */
    public KernelArgs ints(int... v) {
        ByteBuffer bb = ByteBuffer.allocate(4 * v.length).order(ByteOrder.LITTLE_ENDIAN);
        for (int x : v) bb.putInt(x);
        params.add(bb.array());
        sep().append("struct[").append(v.length).append(" ints]");
        return this;
    }

    private KernelArgs add(int bytes, long v, String shown) {
        ByteBuffer bb = ByteBuffer.allocate(bytes).order(ByteOrder.LITTLE_ENDIAN);
        if (bytes == 8) bb.putLong(v); else bb.putInt((int) v);
        params.add(bb.array());
        sep().append(shown);
        return this;
    }

    private StringBuilder sep() { return text.length() == 0 ? text : text.append(", "); }

    public List<byte[]> params() { return params; }

    @Override public String toString() { return "(" + text + ")"; }
}
