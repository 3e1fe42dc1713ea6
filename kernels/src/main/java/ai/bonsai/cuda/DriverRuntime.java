package ai.bonsai.cuda;

import ai.bonsai.tensor.Device;
import jcuda.Pointer;
import jcuda.driver.CUcontext;
import jcuda.driver.CUdevice;
import jcuda.driver.CUdeviceptr;
import jcuda.driver.CUfunction;
import jcuda.driver.CUmodule;
import jcuda.driver.CUevent_flags;
import jcuda.driver.JCudaDriver;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import static jcuda.driver.JCudaDriver.*;

/**
 * A GPU through JCuda's driver API, in the device's primary context (the one the CUDA runtime, and so cuBLAS,
 * uses), everything on the legacy default stream so our kernels and library calls are ordered without host
 * synchronisation. Reads go through a pinned staging buffer and wait (a value is wanted). Writes go through a
 * ring of pinned slots and do not wait: the bytes are copied into a slot, an asynchronous copy is queued behind the
 * work already issued, and an event marks when the slot may be reused, so uploading a batch's images or labels in
 * the middle of a step does not stall the host until the device has drained its queue.
 */
final class DriverRuntime implements GpuRuntime {
    /** The PTX files in the jar, one per kernel family; loaded ahead of time built, never compiled here. */
    static final List<String> MODULES = KernelCatalog.MODULES;

    private final Device device;
    private final CUcontext context = new CUcontext();
    private final Map<String, CUfunction> functions = new HashMap<>();
    private final String name;
    private Pointer staging = new Pointer();
    private long stagingBytes;
    private static final int WRITE_SLOTS = 4;
    private final Pointer[] writeSlot = new Pointer[WRITE_SLOTS];
    private final long[] writeSlotBytes = new long[WRITE_SLOTS];
    private final jcuda.driver.CUevent[] writeDone = new jcuda.driver.CUevent[WRITE_SLOTS];
    private int nextSlot;
    private volatile CublasGemm blas;
    private final boolean tf32;

    private DriverRuntime(Device device, boolean tf32) {
        this.device = device;
        this.tf32 = tf32;
        CUdevice dev = new CUdevice();
        int[] count = {0};
        cuInit(0);
        cuDeviceGetCount(count);
        if (device.index() >= count[0]) {
            throw new CudaUnavailableException("device " + device + ": this machine has " + count[0] + " CUDA device(s)", null);
        }
        cuDeviceGet(dev, device.index());
        cuDevicePrimaryCtxRetain(context, dev);
        cuCtxSetCurrent(context);
        byte[] nm = new byte[256];
        cuDeviceGetName(nm, nm.length, dev);
        this.name = new String(nm, java.nio.charset.StandardCharsets.US_ASCII).trim().replace("\0", "");
        for (String m : MODULES) {
            CUmodule module = new CUmodule();
            cuModuleLoadData(module, ptx(m));
            for (String k : KernelCatalog.kernelsOf(m)) {
                CUfunction f = new CUfunction();
                cuModuleGetFunction(f, module, k);
                functions.put(k, f);
            }
        }
    }

    /**
     * Opens {@code device}. Loading JCuda's JNI library is the first thing that needs {@code libcuda.so.1}; where
     * it is missing, this fails with a message that says so, and nothing was loaded before.
     */
    static DriverRuntime open(Device device, boolean tf32) {
        String missing = loadFailure();
        if (missing != null) {
            throw new CudaUnavailableException("device " + device + ": CUDA is not available: " + missing
                    + "; install an NVIDIA driver (580 series or newer) or use --device cpu", null);
        }
        try {
            return new DriverRuntime(device, tf32);
        } catch (jcuda.CudaException e) {
            throw new CudaUnavailableException("device " + device + ": CUDA driver call failed: " + e.getMessage(), e);
        }
    }

    private static String loadFailure;
    private static boolean loadTried;

    /**
     * Loads JCuda's JNI library once; null when it loaded, else what is missing. JCuda's error lists each way it
     * tried; the dynamic linker's "X: cannot open shared object file" line names the library that is absent.
     */
    private static synchronized String loadFailure() {
        if (loadTried) return loadFailure;
        loadTried = true;
        try {
            JCudaDriver.setExceptionsEnabled(true);
        } catch (LinkageError e) {
            StringBuilder all = new StringBuilder();
            for (Throwable t = e; t != null; t = t.getCause()) all.append(t.getMessage()).append('\n');
            java.util.regex.Matcher m = java.util.regex.Pattern.compile("([\\w.+-]+\\.so[\\w.]*): cannot open shared object file").matcher(all);
            String lib = null;
            while (m.find()) if (!m.group(1).contains("JCuda")) lib = m.group(1);
            loadFailure = lib == null
                    ? "JCuda's driver library could not be loaded (" + rootMessage(e) + ")"
                    : lib.startsWith("libcuda.so")
                    ? "the NVIDIA driver library " + lib + " was not found"
                    : "the library " + lib + " was not found";
        }
        return loadFailure;
    }

    static String rootMessage(Throwable t) {
        while (t.getCause() != null) t = t.getCause();
        String m = String.valueOf(t.getMessage());
        int nl = m.indexOf('\n');
        return nl < 0 ? m : m.substring(0, nl);
    }

    private static byte[] ptx(String module) {
        String res = "/ai/bonsai/cuda/ptx/" + module + ".ptx";
        try (InputStream in = DriverRuntime.class.getResourceAsStream(res)) {
            if (in == null) throw new IllegalStateException("missing PTX resource " + res + " (run kernels/build-ptx)");
            byte[] b = in.readAllBytes();
            byte[] z = java.util.Arrays.copyOf(b, b.length + 1); // cuModuleLoadData wants a NUL-terminated image
            return z;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** Reaches the address JCuda keeps behind a protected accessor. */
    private static final class Address extends CUdeviceptr {
        Address() {}
        long value() { return getNativePointer(); }
        static CUdeviceptr at(long address) { return new Address().withByteOffset(address); }
    }

    private void bind() { cuCtxSetCurrent(context); }

    @Override public long tryMalloc(long bytes) {
        bind();
        Address p = new Address();
        try {
            cuMemAlloc(p, bytes);
        } catch (jcuda.CudaException e) {
            if (e.getMessage() != null && e.getMessage().contains("OUT_OF_MEMORY")) return 0;
            throw e;
        }
        return p.value();
    }

    @Override public void free(long address) { bind(); cuMemFree(Address.at(address)); }

    @Override public long[] memoryInfo() {
        bind();
        long[] free = {0}, total = {0};
        cuMemGetInfo(free, total);
        return new long[] {free[0], total[0]};
    }

    private synchronized ByteBuffer stage(long bytes) {
        if (bytes > stagingBytes) {
            if (stagingBytes > 0) cuMemFreeHost(staging);
            staging = new Pointer();
            long size = Math.max(bytes, 1 << 20);
            cuMemAllocHost(staging, size);
            stagingBytes = size;
        }
        return staging.getByteBuffer(0, bytes).order(java.nio.ByteOrder.LITTLE_ENDIAN);
    }

    @Override public synchronized void write(long dst, ByteBuffer src) {
        bind();
        int n = src.remaining();
        if (n == 0) return;
        int i = nextSlot;
        nextSlot = (nextSlot + 1) % WRITE_SLOTS;
        // The slot's previous copy must have left it; with four slots this waits only when four uploads are queued.
        if (writeDone[i] != null) cuEventSynchronize(writeDone[i]);
        else {
            writeDone[i] = new jcuda.driver.CUevent();
            cuEventCreate(writeDone[i], CUevent_flags.CU_EVENT_DISABLE_TIMING);
        }
        if (n > writeSlotBytes[i]) {
            if (writeSlotBytes[i] > 0) cuMemFreeHost(writeSlot[i]);
            writeSlot[i] = new Pointer();
            long size = Math.max(n, 1 << 20);
            cuMemAllocHost(writeSlot[i], size);
            writeSlotBytes[i] = size;
        }
        writeSlot[i].getByteBuffer(0, n).put(src.duplicate());
        cuMemcpyHtoDAsync(Address.at(dst), writeSlot[i], n, null);
        cuEventRecord(writeDone[i], null);
    }

    @Override public synchronized void read(long src, ByteBuffer dst) {
        bind();
        int n = dst.remaining();
        ByteBuffer s = stage(n);
        cuMemcpyDtoH(staging, Address.at(src), n);
        dst.duplicate().put(s);
    }

    @Override public void copy(long dst, long src, long bytes) { bind(); cuMemcpyDtoD(Address.at(dst), Address.at(src), bytes); }

    @Override public void launch(String kernel, LaunchConfig c, KernelArgs args) {
        bind();
        CUfunction f = functions.get(kernel);
        if (f == null) throw new IllegalArgumentException("kernel " + kernel + " is in no loaded PTX module");
        List<byte[]> ps = args.params();
        Pointer[] pp = new Pointer[ps.size()];
        for (int i = 0; i < pp.length; i++) pp[i] = Pointer.to(ps.get(i));
        try {
            cuLaunchKernel(f, c.gridX(), c.gridY(), c.gridZ(), c.blockX(), c.blockY(), c.blockZ(), c.sharedBytes(), null,
                    Pointer.to(pp), null);
        } catch (jcuda.CudaException e) {
            throw new IllegalStateException("launch of " + kernel + " " + c + " args " + args + " failed: " + e.getMessage(), e);
        }
    }

    @Override public Blas blas() {
        CublasGemm b = blas;
        if (b == null) {
            synchronized (this) {
                if (blas == null) blas = new CublasGemm(tf32);
                b = blas;
            }
        }
        return b;
    }

    private volatile boolean dnnTried;
    private volatile CudnnConv dnn;

    /** cuDNN, loaded on the first convolution; where it cannot be, one line says so and our kernels run. */
    @Override public Dnn dnn() {
        if (!dnnTried) {
            synchronized (this) {
                if (!dnnTried) {
                    bind();
                    dnn = CudnnConv.tryCreate(this, tf32, System.err::println);
                    dnnTried = true;
                }
            }
        }
        return dnn;
    }

    @Override public void synchronize() { bind(); cuCtxSynchronize(); }

    @Override public String describe() { return device + " (" + name + ", driver API, primary context)"; }

    @Override public synchronized void close() {
        if (stagingBytes > 0) cuMemFreeHost(staging);
        stagingBytes = 0;
        for (int i = 0; i < WRITE_SLOTS; i++) {
            if (writeDone[i] != null) {
                cuEventSynchronize(writeDone[i]);
                cuEventDestroy(writeDone[i]);
                writeDone[i] = null;
            }
            if (writeSlotBytes[i] > 0) cuMemFreeHost(writeSlot[i]);
            writeSlotBytes[i] = 0;
        }
    }
}
