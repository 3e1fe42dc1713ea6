package ai.bonsai.dsp.export;

import ai.onnx.proto.OnnxMl.AttributeProto;
import ai.onnx.proto.OnnxMl.GraphProto;
import ai.onnx.proto.OnnxMl.NodeProto;
import ai.onnx.proto.OnnxMl.TensorProto;
import ai.onnx.proto.OnnxMl.TensorShapeProto;
import ai.onnx.proto.OnnxMl.TypeProto;
import ai.onnx.proto.OnnxMl.ValueInfoProto;
import com.google.protobuf.ByteString;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.HashSet;
import java.util.Set;

/**
 * A thin layer over ONNX's generated {@link GraphProto} builder: nodes, initializers and graph inputs/outputs,
 * with every name checked for uniqueness when it is added, so that a graph that ONNX's checker would reject for
 * a duplicate name fails here, naming it, rather than later in a runtime.
 */
final class OnnxGraph {
    private final GraphProto.Builder graph = GraphProto.newBuilder();
    private final Set<String> nodeNames = new HashSet<>();
    /** Every tensor name: initializers, graph inputs and node outputs share one namespace in ONNX. */
    private final Set<String> valueNames = new HashSet<>();

    OnnxGraph(String name) { graph.setName(name); }

    /** A float input or output; a null entry in {@code dims} is the symbolic dimension {@code param}. */
    static ValueInfoProto floatValue(String name, Integer[] dims, String param) {
        TensorShapeProto.Builder shape = TensorShapeProto.newBuilder();
        for (Integer d : dims) {
            TensorShapeProto.Dimension.Builder dim = TensorShapeProto.Dimension.newBuilder();
            if (d == null) dim.setDimParam(param);
            else dim.setDimValue(d);
            shape.addDim(dim);
        }
        TypeProto.Tensor t = TypeProto.Tensor.newBuilder().setElemType(TensorProto.DataType.FLOAT_VALUE).setShape(shape).build();
        return ValueInfoProto.newBuilder().setName(name).setType(TypeProto.newBuilder().setTensorType(t)).build();
    }

    void input(ValueInfoProto v) {
        claimValue(v.getName());
        graph.addInput(v);
    }

    void output(ValueInfoProto v) { graph.addOutput(v); }

    /** A float32 initializer, stored as ONNX's raw little-endian data. */
    String floats(String name, float[] data, long... dims) {
        checkCount(name, data.length, dims);
        ByteBuffer b = ByteBuffer.allocate(4 * data.length).order(ByteOrder.LITTLE_ENDIAN);
        b.asFloatBuffer().put(data);
        return initializer(TensorProto.newBuilder().setName(name).setDataType(TensorProto.DataType.FLOAT_VALUE)
                .setRawData(ByteString.copyFrom(b.array())), dims);
    }

    /** An int64 initializer (gather and scatter indices, shapes). */
    String longs(String name, long[] data, long... dims) {
        checkCount(name, data.length, dims);
        ByteBuffer b = ByteBuffer.allocate(8 * data.length).order(ByteOrder.LITTLE_ENDIAN);
        b.asLongBuffer().put(data);
        return initializer(TensorProto.newBuilder().setName(name).setDataType(TensorProto.DataType.INT64_VALUE)
                .setRawData(ByteString.copyFrom(b.array())), dims);
    }

    private String initializer(TensorProto.Builder t, long[] dims) {
        claimValue(t.getName());
        for (long d : dims) t.addDims(d);
        graph.addInitializer(t);
        return t.getName();
    }

    private static void checkCount(String name, int length, long[] dims) {
        long n = 1;
        for (long d : dims) n *= d;
        if (n != length) throw new IllegalStateException("ONNX export: initializer " + name + " has " + length + " values for dims of " + n);
    }

    /**
     * Adds a node named {@code name} whose single output tensor is also called {@code name}; returns that name.
     * ONNX keeps node and tensor names in separate namespaces, so the node and its output may share the dotted name.
     */
    String node(String op, String name, String[] inputs, AttributeProto... attrs) {
        return node(op, name, name, inputs, attrs);
    }

    /** As {@link #node(String, String, String[], AttributeProto...)}, with the output tensor named {@code output}. */
    String node(String op, String name, String output, String[] inputs, AttributeProto... attrs) {
        if (!nodeNames.add(name)) throw new IllegalStateException("ONNX export: two nodes named " + name);
        claimValue(output);
        NodeProto.Builder n = NodeProto.newBuilder().setOpType(op).setName(name).addOutput(output);
        for (String in : inputs) {
            if (!valueNames.contains(in)) throw new IllegalStateException("ONNX export: node " + name + " reads " + in + ", which is not defined yet");
            n.addInput(in);
        }
        for (AttributeProto a : attrs) n.addAttribute(a);
        graph.addNode(n);
        return name;
    }

    private void claimValue(String name) {
        if (!valueNames.add(name)) throw new IllegalStateException("ONNX export: two tensors named " + name);
    }

    static AttributeProto ints(String name, long... values) {
        AttributeProto.Builder a = AttributeProto.newBuilder().setName(name).setType(AttributeProto.AttributeType.INTS);
        for (long v : values) a.addInts(v);
        return a.build();
    }

    static AttributeProto integer(String name, long value) {
        return AttributeProto.newBuilder().setName(name).setType(AttributeProto.AttributeType.INT).setI(value).build();
    }

    static AttributeProto real(String name, float value) {
        return AttributeProto.newBuilder().setName(name).setType(AttributeProto.AttributeType.FLOAT).setF(value).build();
    }

    static AttributeProto string(String name, String value) {
        return AttributeProto.newBuilder().setName(name).setType(AttributeProto.AttributeType.STRING)
                .setS(ByteString.copyFromUtf8(value)).build();
    }

    GraphProto build() { return graph.build(); }
}
