package ai.bonsai.dsp.export;

import ai.bonsai.dsp.models.CifarResNet;
import ai.bonsai.dsp.pack.PackFixtures;
import ai.bonsai.dsp.pack.PackedModel;
import ai.bonsai.dsp.pack.Packer;
import ai.bonsai.tensor.Generator;
import ai.onnx.proto.OnnxMl.ModelProto;
import ai.onnx.proto.OnnxMl.NodeProto;
import ai.onnx.proto.OnnxMl.TensorProto;
import org.junit.jupiter.api.Test;

import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.Collectors;

import static org.junit.jupiter.api.Assertions.*;

/** The graphs' structure, names and metadata, and the errors; no runtime needed (OnnxRuntimeEquivalenceTest runs them). */
class OnnxExportTest {
    private static Set<String> ops(ModelProto m) {
        return m.getGraph().getNodeList().stream().map(NodeProto::getOpType).collect(Collectors.toSet());
    }

    private static long count(ModelProto m, String op) {
        return m.getGraph().getNodeList().stream().filter(n -> n.getOpType().equals(op)).count();
    }

    @Test
    void denseGraphUsesPlainOperatorsAndBonsaiNames() {
        CifarResNet model = new CifarResNet(20, 10, new Generator(1));
        model.eval();
        ModelProto m = OnnxExport.dense(model, OnnxExport.Options.defaults(), Map.of("groups", "4"));
        assertEquals(Set.of("Conv", "BatchNormalization", "Relu", "Add", "GlobalAveragePool", "Flatten", "Gemm"), ops(m));
        assertEquals(21, count(m, "Conv"));                         // stem, 18 block convolutions, 2 projections
        // Every parameter and BN statistic is an initializer under its Bonsai state-dict name.
        Set<String> inits = m.getGraph().getInitializerList().stream().map(TensorProto::getName).collect(Collectors.toSet());
        assertEquals(model.stateDict().keySet(), inits);
        Set<String> nodes = m.getGraph().getNodeList().stream().map(NodeProto::getName).collect(Collectors.toSet());
        assertTrue(nodes.containsAll(List.of("conv_1_3x3", "bn_1", "stage_1.0.conv_a", "stage_2.0.downsample.0", "classifier")), nodes.toString());
        assertEquals("bonsai", m.getProducerName());
        assertEquals(OnnxExport.BONSAI_VERSION, m.getProducerVersion());
        assertEquals(17, m.getOpsetImport(0).getVersion());
        assertEquals(8, m.getIrVersion());
        Map<String, String> meta = m.getMetadataPropsList().stream().collect(Collectors.toMap(e -> e.getKey(), e -> e.getValue()));
        assertEquals("4", meta.get("groups"));
        assertEquals("0.4914,0.4822,0.4465", meta.get("normalization_mean"));
        assertEquals(OnnxExport.BONSAI_VERSION, meta.get("bonsai_version"));
        assertEquals(OnnxExport.INPUT, m.getGraph().getInput(0).getName());
        assertEquals(OnnxExport.OUTPUT, m.getGraph().getOutput(0).getName());
    }

    @Test
    void packedGraphHasAGatherAndAConvPerBranchAndAScatterAdd() {
        PackedModel p = Packer.pack(PackFixtures.masked(20, 4, 0.65, 9));
        ModelProto scatter = OnnxExport.packed(p.structure(), new OnnxExport.Options(null, 17, OnnxExport.Residual.SCATTER), Map.of());
        int branches = 0, blocksWithScatter = 0;
        for (PackedModel.Block b : p.structure().blocks()) {
            branches += b.convA().size() + b.convB().size();
            if (!b.convA().isEmpty() && !b.convB().isEmpty()) blocksWithScatter++;
        }
        // One Conv per branch, plus the stem and two projections.
        assertEquals(branches + 3, count(scatter, "Conv"));
        assertTrue(count(scatter, "Gather") > branches / 2, "gathers " + count(scatter, "Gather") + " for " + branches + " branches");
        assertEquals(blocksWithScatter, count(scatter, "ScatterElements"));
        for (NodeProto n : scatter.getGraph().getNodeList()) {
            if (!n.getOpType().equals("ScatterElements")) continue;
            Set<String> attrs = new HashSet<>();
            n.getAttributeList().forEach(a -> attrs.add(a.getName() + "=" + (a.hasS() ? a.getS().toStringUtf8() : Long.toString(a.getI()))));
            assertEquals(Set.of("axis=1", "reduction=add"), attrs, n.getName());
        }
        assertFalse(ops(scatter).contains("BatchNormalization"), "packed BN is folded");
        ModelProto padded = OnnxExport.packed(p.structure(), new OnnxExport.Options(8, 17, OnnxExport.Residual.PADDED), Map.of());
        assertFalse(ops(padded).contains("ScatterElements"));
        assertEquals(8, padded.getGraph().getInput(0).getType().getTensorType().getShape().getDim(0).getDimValue());
        // Node names follow Bonsai's: block, layer, branch.
        assertTrue(scatter.getGraph().getNodeList().stream().anyMatch(n -> n.getName().equals("stage_1.0.conv_a.branch_0")));
    }

    @Test
    void badOptionsAndUnsupportedModelsNameTheProblem() {
        var e = assertThrows(IllegalArgumentException.class, () -> new OnnxExport.Options(null, 15, OnnxExport.Residual.SCATTER));
        assertTrue(e.getMessage().contains("--opset 15") && e.getMessage().contains("padded"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> new OnnxExport.Options(null, 9, OnnxExport.Residual.PADDED));
        assertTrue(e.getMessage().contains("--opset") && e.getMessage().contains("got 9"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> new OnnxExport.Options(0, 17, OnnxExport.Residual.PADDED));
        assertTrue(e.getMessage().contains("--batch"), e.getMessage());

        PackedModel.Structure s = Packer.pack(PackFixtures.masked(20, 2, 0.5, 3)).structure();
        PackedModel.Structure vgg = new PackedModel.Structure("vgg", s.depth(), s.inputChannels(), s.inputSize(), s.stem(), s.blocks(), s.classifier());
        e = assertThrows(IllegalArgumentException.class, () -> OnnxExport.packed(vgg, OnnxExport.Options.defaults(), Map.of()));
        assertTrue(e.getMessage().contains("'vgg'"), e.getMessage());

        // A branch reading a channel its block does not have: the error names the block.
        PackedModel.Block b = s.blocks().get(1);
        PackedModel.Branch br = b.convA().get(0);
        int[] in = br.in().clone();
        in[0] = 999;
        PackedModel.Block bad = new PackedModel.Block(b.name(), b.inChannels(), b.planes(), b.stride(), b.kernel(),
                List.of(new PackedModel.Branch(in, br.out(), br.weight(), br.bn())), b.convB(), b.shortcut(), b.residualBias());
        List<PackedModel.Block> blocks = new java.util.ArrayList<>(s.blocks());
        blocks.set(1, bad);
        PackedModel.Structure broken = new PackedModel.Structure(s.architecture(), s.depth(), s.inputChannels(), s.inputSize(), s.stem(), blocks,
                s.classifier());
        e = assertThrows(IllegalArgumentException.class, () -> OnnxExport.packed(broken, OnnxExport.Options.defaults(), Map.of()));
        assertTrue(e.getMessage().contains(b.name()), e.getMessage());
    }
}
