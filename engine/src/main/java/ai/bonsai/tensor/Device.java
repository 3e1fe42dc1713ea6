package ai.bonsai.tensor;

/**
 * Where a tensor's memory lives. {@code cpu()} is the embedded default; {@code cuda(i)} is served by the
 * CUDA backend in the kernels module once it is on the class path.
 */
public record Device(Kind kind, int index) {
    public enum Kind { CPU, CUDA }

    private static final Device CPU = new Device(Kind.CPU, 0);

    public static Device cpu() { return CPU; }

    public static Device cuda(int index) { return new Device(Kind.CUDA, index); }

    /** Parses {@code cpu}, {@code cuda} or {@code cuda:N}, as the command-line {@code --device} flag takes them. */
    public static Device parse(String s) {
        String t = s.trim().toLowerCase(java.util.Locale.ROOT);
        if (t.equals("cpu")) return CPU;
        if (t.equals("cuda")) return cuda(0);
        if (t.startsWith("cuda:")) {
            try { return cuda(Integer.parseInt(t.substring(5))); } catch (NumberFormatException e) { /* fall through */ }
        }
        throw new IllegalArgumentException("device: expected cpu, cuda or cuda:N, got '" + s + "'");
    }

    @Override public String toString() { return kind == Kind.CPU ? "cpu" : "cuda:" + index; }
}
