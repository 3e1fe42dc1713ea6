package ai.bonsai.dsp.imports;

import ai.bonsai.io.torch.TorchArchive;
import ai.bonsai.io.torch.TorchFormatException;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * A small parser for the {@code forward} methods of the TorchScript source in an archive's {@code code/}:
 * exactly the straight-line shape that tracing prints, one statement per line, nothing else.
 *
 * <pre>
 *   statement  := targets '=' expr | 'return' expr
 *   targets    := NAME | NAME ',' (NAME ',')*         (tuple unpacking, trailing comma allowed)
 *   expr       := primary ( '.' NAME | '(' args ')' )*
 *   primary    := NAME | NUMBER | STRING | '-' NUMBER | '(' expr ')' | '(' expr ',' ... ')' | '[' args ']'
 * </pre>
 *
 * It is not a Python parser: control flow, operators, keywords arguments and comprehensions are rejected
 * with a {@link TorchFormatException} naming the file, class and line. Lines, tokens and nesting are bounded,
 * so hostile source cannot make it recurse without limit.
 */
final class TorchScriptCode {
    private static final int MAX_NESTING = 64, MAX_TOKENS_PER_LINE = 4096, MAX_STATEMENTS = 10_000;

    /** Expressions. */
    sealed interface Expr permits Name, Num, Str, ListE, TupleE, Attr, Call {}

    record Name(String id) implements Expr {}

    record Num(String text) implements Expr {}

    record Str(String value) implements Expr {}

    record ListE(List<Expr> items) implements Expr {}

    record TupleE(List<Expr> items) implements Expr {}

    record Attr(Expr base, String name) implements Expr {}

    record Call(Expr fn, List<Expr> args) implements Expr {}

    /** {@code targets = value}, or {@code return value} when targets is empty. */
    record Statement(List<String> targets, Expr value, int line) {
        boolean isReturn() { return targets.isEmpty(); }
    }

    /** The forward method of one class: its parameter names (self first) and body. */
    record Forward(String where, List<String> params, List<Statement> body) {
        TorchFormatException error(String msg) { return new TorchFormatException(where + ": " + msg); }

        TorchFormatException error(Statement s, String msg) { return new TorchFormatException(where + " line " + s.line() + ": " + msg); }
    }

    private TorchScriptCode() {}

    /**
     * The forward method of the class {@code qualifiedClass} (such as
     * {@code __torch__.cifar_model.___torch_mangle_62.Compactblock}), found in {@code code/} under the path of
     * its module ({@code __torch__/cifar_model/___torch_mangle_62.py}).
     */
    static Forward forward(TorchArchive archive, String qualifiedClass) throws TorchFormatException {
        int dot = qualifiedClass.lastIndexOf('.');
        if (dot <= 0) throw new TorchFormatException(archive.source() + ": class name '" + qualifiedClass + "' has no module");
        String file = qualifiedClass.substring(0, dot).replace('.', '/') + ".py", cls = qualifiedClass.substring(dot + 1);
        Map<String, String> code = archive.code();
        String text = code.get(file);
        String where = archive.source() + ":" + archive.root() + "/code/" + file + " class " + cls;
        if (text == null) throw new TorchFormatException(where + ": no such code file in the archive");
        return parseForward(text, cls, where);
    }

    static Forward parseForward(String text, String cls, String where) throws TorchFormatException {
        String[] lines = text.split("\n", -1);
        int i = 0;
        while (i < lines.length && !lines[i].startsWith("class " + cls + "(")) i++;
        if (i == lines.length) throw new TorchFormatException(where + ": class not found");
        i++;
        // Find "  def forward(" inside this class (before the next top-level line).
        while (i < lines.length && !lines[i].trim().startsWith("def forward(")) {
            if (!lines[i].isEmpty() && !Character.isWhitespace(lines[i].charAt(0))) throw new TorchFormatException(where + ": class has no forward method");
            i++;
        }
        if (i == lines.length) throw new TorchFormatException(where + ": class has no forward method");
        int defIndent = indent(lines[i]);
        int defLine = i + 1;
        StringBuilder sig = new StringBuilder();
        while (true) {
            if (i == lines.length || sig.length() > 100_000) throw new TorchFormatException(where + " line " + defLine + ": unterminated forward signature");
            sig.append(lines[i].trim()).append(' ');
            if (lines[i].trim().endsWith(":")) break;
            i++;
        }
        i++;
        String s = sig.toString().trim();
        int open = s.indexOf('('), close = s.lastIndexOf(") ->");
        if (close < 0) close = s.lastIndexOf("):");
        if (open < 0 || close < open) throw new TorchFormatException(where + " line " + defLine + ": cannot read the forward signature");
        List<String> params = new ArrayList<>();
        for (String p : splitTopLevel(s.substring(open + 1, close), where, defLine)) {
            String name = p.contains(":") ? p.substring(0, p.indexOf(':')).trim() : p.trim();
            if (!name.matches("[A-Za-z_][A-Za-z0-9_]*")) throw new TorchFormatException(where + " line " + defLine + ": parameter '" + p.trim() + "' is not 'name: Type'");
            params.add(name);
        }
        if (params.isEmpty() || !params.get(0).equals("self")) throw new TorchFormatException(where + " line " + defLine + ": forward has no 'self' parameter");
        List<Statement> body = new ArrayList<>();
        for (; i < lines.length; i++) {
            String line = lines[i];
            if (line.isBlank()) continue;
            if (indent(line) <= defIndent) break;
            if (body.size() >= MAX_STATEMENTS) throw new TorchFormatException(where + ": more than " + MAX_STATEMENTS + " statements");
            body.add(new LineParser(tokenize(line.trim(), where, i + 1), where, i + 1).statement());
        }
        if (body.isEmpty() || !body.get(body.size() - 1).isReturn()) throw new TorchFormatException(where + ": forward does not end with a return");
        return new Forward(where, List.copyOf(params), List.copyOf(body));
    }

    private static int indent(String line) {
        int n = 0;
        while (n < line.length() && line.charAt(n) == ' ') n++;
        return n;
    }

    private static List<String> splitTopLevel(String s, String where, int line) throws TorchFormatException {
        List<String> out = new ArrayList<>();
        int depth = 0, start = 0;
        for (int k = 0; k < s.length(); k++) {
            char c = s.charAt(k);
            if (c == '[' || c == '(') depth++;
            else if (c == ']' || c == ')') depth--;
            else if (c == ',' && depth == 0) { out.add(s.substring(start, k)); start = k + 1; }
            if (depth < 0 || depth > MAX_NESTING) throw new TorchFormatException(where + " line " + line + ": unbalanced brackets in the signature");
        }
        if (!s.substring(start).isBlank()) out.add(s.substring(start));
        return out;
    }

    // ------------------------------------------------------------------------------------ tokens

    private record Token(char kind, String text) {}   // kind: 'n' name, '0' number, 's' string, or the punctuation char

    private static List<Token> tokenize(String line, String where, int lineNo) throws TorchFormatException {
        List<Token> out = new ArrayList<>();
        int k = 0;
        while (k < line.length()) {
            if (out.size() > MAX_TOKENS_PER_LINE) throw new TorchFormatException(where + " line " + lineNo + ": line too long");
            char c = line.charAt(k);
            if (c == ' ') { k++; continue; }
            if (Character.isLetter(c) || c == '_') {
                int j = k;
                while (j < line.length() && (Character.isLetterOrDigit(line.charAt(j)) || line.charAt(j) == '_')) j++;
                out.add(new Token('n', line.substring(k, j)));
                k = j;
            } else if (Character.isDigit(c)) {
                int j = k;
                while (j < line.length() && (Character.isLetterOrDigit(line.charAt(j)) || line.charAt(j) == '.'
                        || ((line.charAt(j) == '-' || line.charAt(j) == '+') && (line.charAt(j - 1) == 'e' || line.charAt(j - 1) == 'E')))) j++;
                out.add(new Token('0', line.substring(k, j)));
                k = j;
            } else if (c == '"' || c == '\'') {
                int j = line.indexOf(c, k + 1);
                if (j < 0) throw new TorchFormatException(where + " line " + lineNo + ": unterminated string");
                out.add(new Token('s', line.substring(k + 1, j)));
                k = j + 1;
            } else if ("()[],.=-".indexOf(c) >= 0) {
                out.add(new Token(c, String.valueOf(c)));
                k++;
            } else {
                throw new TorchFormatException(where + " line " + lineNo + ": unexpected character '" + c + "' in '" + line + "'");
            }
        }
        return out;
    }

    private static final class LineParser {
        private final List<Token> t;
        private final String where;
        private final int line;
        private int p, depth;

        LineParser(List<Token> t, String where, int line) {
            this.t = t;
            this.where = where;
            this.line = line;
        }

        Statement statement() throws TorchFormatException {
            if (is('n', "return")) {
                p++;
                Expr e = expr();
                end();
                return new Statement(List.of(), e, line);
            }
            List<String> targets = new ArrayList<>();
            while (true) {
                targets.add(name());
                if (is('=')) break;
                expect(',');
                if (is('=')) break;
            }
            expect('=');
            Expr e = expr();
            end();
            return new Statement(List.copyOf(targets), e, line);
        }

        private Expr expr() throws TorchFormatException {
            if (++depth > MAX_NESTING) throw error("expression nested more than " + MAX_NESTING + " deep");
            Expr e = primary();
            while (true) {
                if (is('.')) { p++; e = new Attr(e, name()); }
                else if (is('(')) { p++; e = new Call(e, list(')')); }
                else break;
            }
            depth--;
            return e;
        }

        private Expr primary() throws TorchFormatException {
            if (p >= t.size()) throw error("expression ends early");
            Token k = t.get(p++);
            switch (k.kind()) {
                case 'n': return new Name(k.text());
                case '0': return new Num(k.text());
                case 's': return new Str(k.text());
                case '-':
                    if (p < t.size() && t.get(p).kind() == '0') return new Num("-" + t.get(p++).text());
                    throw error("'-' not followed by a number");
                case '[': return new ListE(list(']'));
                case '(': {
                    int start = p;
                    List<Expr> items = list(')');
                    boolean trailingComma = t.get(p - 2).kind() == ',';
                    if (items.size() == 1 && !trailingComma && p - start > 1) return items.get(0);
                    return new TupleE(items);
                }
                default: throw error("unexpected '" + k.text() + "'");
            }
        }

        /** Comma-separated expressions up to {@code close} (consumed); a trailing comma is allowed. */
        private List<Expr> list(char close) throws TorchFormatException {
            List<Expr> items = new ArrayList<>();
            while (!is(close)) {
                items.add(expr());
                if (is(close)) break;
                expect(',');
            }
            p++;
            return items;
        }

        private String name() throws TorchFormatException {
            if (p < t.size() && t.get(p).kind() == 'n') return t.get(p++).text();
            throw error("expected a name");
        }

        private boolean is(char kind) { return p < t.size() && t.get(p).kind() == kind; }

        private boolean is(char kind, String text) { return is(kind) && t.get(p).text().equals(text); }

        private void expect(char kind) throws TorchFormatException {
            if (!is(kind)) throw error("expected '" + kind + "'");
            p++;
        }

        private void end() throws TorchFormatException {
            if (p != t.size()) throw error("unexpected '" + t.get(p).text() + "' after the statement");
        }

        private TorchFormatException error(String msg) {
            StringBuilder sb = new StringBuilder();
            for (Token k : t) sb.append(k.text()).append(' ');
            return new TorchFormatException(where + " line " + line + ": " + msg + " in: " + sb.toString().trim());
        }
    }

    // ------------------------------------------------------------------------------------ helpers for importers

    /** "torch.take_along_dim" for the expression torch.take_along_dim, or null if it is not a dotted name. */
    static String dotted(Expr e) {
        if (e instanceof Name n) return n.id();
        if (e instanceof Attr a) {
            String b = dotted(a.base());
            return b == null ? null : b + "." + a.name();
        }
        return null;
    }
}
