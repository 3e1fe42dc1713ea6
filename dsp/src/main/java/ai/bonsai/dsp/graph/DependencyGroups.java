package ai.bonsai.dsp.graph;

import ai.bonsai.dsp.graph.ModelGraph.Kind;
import ai.bonsai.dsp.graph.ModelGraph.Op;

import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;

/**
 * Which channels of a traced model must be removed together (the idea of DepGraph, Fang et al., CVPR 2023). Every
 * channel of every value is a slot; slots that are the same channel seen from different layers are joined:
 * <ul>
 * <li>batch norm, activations and pooling: output channel c is input channel c;</li>
 * <li>a residual add: output channel c is channel c of every summand (so every branch's filter c goes together);</li>
 * <li>a concat: output channel {@code offset_i + c} is channel c of input i;</li>
 * <li>a depthwise or grouped convolution: its output channels are tied to the input channels of their group (it
 *     cannot drop a channel without dropping the filter that reads it);</li>
 * <li>a flatten: the H*W features of channel c are channel c, so a linear layer's input columns follow the
 *     last feature map's channels.</li>
 * </ul>
 * A plain convolution (groups 1) or a linear layer ties nothing: its output channels are its filters, its input
 * channels columns of its weight. A group's <em>producers</em> are the filters that write its channels, its
 * <em>consumers</em> the weight columns that read them. A group is <em>pinned</em> when it touches the model's
 * input or output or an opaque op: it can never be removed.
 */
public final class DependencyGroups {
    /** One layer's share of a group: {@code layer} (module path) and the indices, output filters or input columns. */
    public record Member(String layer, Role role, List<Integer> indices) {
        @Override public String toString() { return layer + " " + role.name().toLowerCase() + " " + indices; }
    }

    /** How a layer takes part: its filters write the channels, its columns read them, or it passes them through. */
    public enum Role { PRODUCER, CONSUMER, BATCH_NORM, DEPTHWISE }

    /** One group: its slots as (value id, channel), its members, and whether it is pinned. */
    public record Group(int id, List<int[]> slots, List<Member> members, boolean pinned) {
        /** The members of one layer. */
        public List<Member> of(String layer) {
            List<Member> out = new ArrayList<>();
            for (Member m : members) if (m.layer.equals(layer)) out.add(m);
            return out;
        }
    }

    private final ModelGraph graph;
    private final int[] offset;          // first slot of each value
    private final int[] parent;
    private final boolean[] pinnedSlot;
    private final int[] groupOfSlot;
    private final List<Group> groups;

    public DependencyGroups(ModelGraph graph) {
        this.graph = graph;
        List<Op> ops = graph.ops();
        offset = new int[ops.size() + 1];
        for (Op op : ops) offset[op.id() + 1] = offset[op.id()] + op.channels();
        int slots = offset[ops.size()];
        parent = new int[slots];
        for (int i = 0; i < slots; i++) parent[i] = i;
        pinnedSlot = new boolean[slots];
        for (Op op : ops) tie(op);
        for (int c = 0; c < ops.get(0).channels(); c++) pinnedSlot[slot(0, c)] = true;
        for (int c = 0; c < graph.op(graph.output()).channels(); c++) pinnedSlot[slot(graph.output(), c)] = true;

        // Number the classes in slot order, then collect members.
        groupOfSlot = new int[slots];
        Map<Integer, Integer> number = new LinkedHashMap<>();
        for (int s = 0; s < slots; s++) {
            int r = find(s);
            Integer n = number.get(r);
            if (n == null) number.put(r, n = number.size());
            groupOfSlot[s] = n;
        }
        int count = number.size();
        List<List<int[]>> slotLists = new ArrayList<>();
        boolean[] pinned = new boolean[count];
        for (int g = 0; g < count; g++) slotLists.add(new ArrayList<>());
        for (Op op : ops) {
            for (int c = 0; c < op.channels(); c++) {
                int s = slot(op.id(), c), g = groupOfSlot[s];
                slotLists.get(g).add(new int[] {op.id(), c});
                pinned[g] |= pinnedSlot[s];
            }
        }
        List<Map<String, TreeSet<Integer>>> members = new ArrayList<>();
        for (int g = 0; g < count; g++) members.add(new LinkedHashMap<>());
        for (Op op : ops) {
            switch (op.kind()) {
                case CONV -> {
                    boolean plain = op.conv().groups() == 1;
                    for (int c = 0; c < op.channels(); c++) member(members, groupOf(op.id(), c), op.name(), plain ? Role.PRODUCER : Role.DEPTHWISE, c);
                    Op in = graph.op(op.input(0));
                    if (plain) for (int c = 0; c < in.channels(); c++) member(members, groupOf(in.id(), c), op.name(), Role.CONSUMER, c);
                }
                case LINEAR -> {
                    Op in = graph.op(op.input(0));
                    for (int c = 0; c < in.channels(); c++) member(members, groupOf(in.id(), c), op.name(), Role.CONSUMER, c);
                    for (int c = 0; c < op.channels(); c++) member(members, groupOf(op.id(), c), op.name(), Role.PRODUCER, c);
                }
                case BATCH_NORM -> {
                    for (int c = 0; c < op.channels(); c++) member(members, groupOf(op.id(), c), op.name(), Role.BATCH_NORM, c);
                }
                default -> { }
            }
        }
        List<Group> out = new ArrayList<>();
        for (int g = 0; g < count; g++) {
            List<Member> ms = new ArrayList<>();
            for (Map.Entry<String, TreeSet<Integer>> e : members.get(g).entrySet()) {
                String[] key = e.getKey().split("\u0000");
                ms.add(new Member(key[0], Role.valueOf(key[1]), List.copyOf(e.getValue())));
            }
            out.add(new Group(g, Collections.unmodifiableList(slotLists.get(g)), List.copyOf(ms), pinned[g]));
        }
        groups = Collections.unmodifiableList(out);
    }

    private static void member(List<Map<String, TreeSet<Integer>>> members, int group, String layer, Role role, int index) {
        members.get(group).computeIfAbsent(layer + "\u0000" + role.name(), k -> new TreeSet<>()).add(index);
    }

    private void tie(Op op) {
        switch (op.kind()) {
            case BATCH_NORM, ACTIVATION, POOL -> {
                for (int c = 0; c < op.channels(); c++) union(slot(op.id(), c), slot(op.input(0), c));
            }
            case ADD -> {
                for (int in : op.inputs()) for (int c = 0; c < op.channels(); c++) union(slot(op.id(), c), slot(in, c));
            }
            case CONCAT -> {
                int at = 0;
                for (int in : op.inputs()) {
                    int n = graph.op(in).channels();
                    for (int c = 0; c < n; c++) union(slot(op.id(), at + c), slot(in, c));
                    at += n;
                }
            }
            case CONV -> {
                int groupsOfConv = op.conv().groups();
                if (groupsOfConv == 1) return;
                int inPer = graph.op(op.input(0)).channels() / groupsOfConv, outPer = op.channels() / groupsOfConv;
                for (int g = 0; g < groupsOfConv; g++) {
                    for (int o = 0; o < outPer; o++) for (int i = 0; i < inPer; i++) union(slot(op.id(), g * outPer + o), slot(op.input(0), g * inPer + i));
                }
            }
            case FLATTEN -> {
                Op in = graph.op(op.input(0));
                int hw = in.spatial();
                for (int f = 0; f < op.channels(); f++) union(slot(op.id(), f), slot(in.id(), f / hw));
            }
            case OPAQUE -> {
                for (int c = 0; c < op.channels(); c++) pinnedSlot[slot(op.id(), c)] = true;
                for (int in : op.inputs()) for (int c = 0; c < graph.op(in).channels(); c++) pinnedSlot[slot(in, c)] = true;
            }
            default -> { }
        }
    }

    private int slot(int value, int channel) { return offset[value] + channel; }

    private int find(int s) {
        while (parent[s] != s) {
            parent[s] = parent[parent[s]];
            s = parent[s];
        }
        return s;
    }

    private void union(int a, int b) {
        int ra = find(a), rb = find(b);
        if (ra != rb) parent[Math.max(ra, rb)] = Math.min(ra, rb);
    }

    public ModelGraph graph() { return graph; }

    public List<Group> groups() { return groups; }

    /** The group of channel {@code channel} of value {@code value}. */
    public int groupOf(int value, int channel) {
        if (channel < 0 || channel >= graph.op(value).channels()) {
            throw new IllegalArgumentException("DependencyGroups.groupOf: value " + value + " has " + graph.op(value).channels() + " channels, got channel " + channel);
        }
        return groupOfSlot[slot(value, channel)];
    }

    public Group group(int id) { return groups.get(id); }

    /** The groups that contain a producer member of {@code layer}, i.e. the groups its filters belong to, filter order. */
    public List<Group> groupsOfFilters(String layer) {
        Op op = null;
        for (Op o : graph.ops()) if (layer.equals(o.name())) op = o;
        if (op == null) throw new IllegalArgumentException("DependencyGroups: no layer named '" + layer + "' in the graph");
        List<Group> out = new ArrayList<>();
        for (int c = 0; c < op.channels(); c++) out.add(groups.get(groupOf(op.id(), c)));
        return out;
    }

    /** Groups of more than one slot that are not pinned, one per line with their members: what can go together. */
    @Override public String toString() {
        StringBuilder sb = new StringBuilder();
        for (Group g : groups) {
            if (g.members.isEmpty()) continue;
            sb.append("group ").append(g.id).append(g.pinned ? " (pinned)" : "").append(": ").append(g.members).append('\n');
        }
        return sb.toString();
    }
}
