package ai.bonsai.cuda;

import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.DataInputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;

/**
 * A {@link GpuRuntime} whose "device" is the emulator process (src/main/cuda/emu): our .cu files compiled by g++
 * with each block's threads as fibers. {@link CudaBackend} computes grids and blocks exactly as on a GPU and they
 * are passed through unchanged. The protocol is described in emu_main.cpp.
 */
final class EmulatorRuntime implements GpuRuntime {
    enum Order { FORWARD, REVERSE, SHUFFLE }

    private final Process process;
    private final DataInputStream in;
    private final OutputStream out;
    private long barriers;

    EmulatorRuntime(Path binary, Order order, long seed) {
        try {
            process = new ProcessBuilder(binary.toString()).redirectError(ProcessBuilder.Redirect.INHERIT).start();
        } catch (IOException e) {
            throw new UncheckedIOException("cannot start the emulator " + binary, e);
        }
        in = new DataInputStream(new BufferedInputStream(process.getInputStream(), 1 << 16));
        out = new BufferedOutputStream(process.getOutputStream(), 1 << 16);
        ByteBuffer b = le(10).put((byte) 'O').put((byte) order.ordinal()).putLong(seed);
        send(b);
    }

    private static ByteBuffer le(int n) { return ByteBuffer.allocate(n).order(ByteOrder.LITTLE_ENDIAN); }

    private void send(ByteBuffer b) {
        try { out.write(b.array(), 0, b.position()); } catch (IOException e) { throw new UncheckedIOException("emulator died", e); }
    }

    private ByteBuffer receive(int n) {
        try {
            out.flush();
            byte[] a = new byte[n];
            in.readFully(a);
            return ByteBuffer.wrap(a).order(ByteOrder.LITTLE_ENDIAN);
        } catch (IOException e) {
            throw new UncheckedIOException("emulator died (exit " + (process.isAlive() ? "-" : process.exitValue()) + ")", e);
        }
    }

    @Override public synchronized long tryMalloc(long bytes) {
        send(le(9).put((byte) 'A').putLong(bytes));
        return receive(8).getLong();
    }

    @Override public synchronized void free(long address) { send(le(9).put((byte) 'F').putLong(address)); }

    @Override public long[] memoryInfo() { return new long[] {Runtime.getRuntime().freeMemory(), Runtime.getRuntime().maxMemory()}; }

    @Override public synchronized void write(long dst, ByteBuffer src) {
        int n = src.remaining();
        send(le(17).put((byte) 'W').putLong(dst).putLong(n));
        byte[] a = new byte[n];
        src.duplicate().get(a);
        send(ByteBuffer.wrap(a).position(n));
    }

    @Override public synchronized void read(long src, ByteBuffer dst) {
        int n = dst.remaining();
        send(le(17).put((byte) 'R').putLong(src).putLong(n));
        dst.duplicate().put(receive(n));
    }

    @Override public synchronized void copy(long dst, long src, long bytes) {
        send(le(25).put((byte) 'C').putLong(dst).putLong(src).putLong(bytes));
    }

    @Override public synchronized void launch(String kernel, LaunchConfig c, KernelArgs args) {
        byte[] name = kernel.getBytes(StandardCharsets.US_ASCII);
        List<byte[]> ps = args.params();
        int size = 1 + 2 + name.length + 7 * 4 + 4;
        for (byte[] p : ps) size += 1 + p.length;
        ByteBuffer b = le(size).put((byte) 'L').putShort((short) name.length).put(name)
                .putInt(c.gridX()).putInt(c.gridY()).putInt(c.gridZ()).putInt(c.blockX()).putInt(c.blockY()).putInt(c.blockZ())
                .putInt(c.sharedBytes()).putInt(ps.size());
        for (byte[] p : ps) b.put((byte) p.length).put(p);
        send(b);
        ByteBuffer head = receive(5);
        byte status = head.get();
        int len = head.getInt();
        ByteBuffer rest = receive(len + 8);
        byte[] msg = new byte[len];
        rest.get(msg);
        barriers = rest.getLong();
        if (status != 0) {
            throw new IllegalStateException("kernel " + kernel + " " + c + " args " + args + ": " + new String(msg, StandardCharsets.UTF_8));
        }
    }

    /** How many __syncthreads() barriers the emulator has released so far. */
    synchronized long barriers() { return barriers; }

    @Override public synchronized void synchronize() { receiveNothing(); }

    private void receiveNothing() {
        try { out.flush(); } catch (IOException e) { throw new UncheckedIOException(e); }
    }

    @Override public String describe() { return "CPU emulation of the CUDA kernels"; }

    @Override public synchronized void close() {
        try {
            out.write('Q');
            out.flush();
        } catch (IOException ignored) {
            // already gone
        }
        process.destroy();
    }

}
