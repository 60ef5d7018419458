package configs

import (
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// yaml.v3 reports type errors in Go's terms ("cannot unmarshal !!str
// `two` into int", "field timeout not found in type configs.Config").
// explainYAML says the same in the config's terms: the field's path and
// what was expected, in words, and for an unknown field the known field
// it most likely meant.

var (
	yamlCannot  = regexp.MustCompile("^cannot unmarshal !!(\\w+)(?: `(.*)`)? into (.+)$")
	yamlUnknown = regexp.MustCompile(`^field (\S+) not found in type configs\.(\w+)$`)
)

// kinds says in words what a Go type of the schema wants.
var kinds = map[string]string{
	"time.Duration":     "a duration such as 10s or 1m30s",
	"int":               "a whole number",
	"bool":              "true or false",
	"string":            "a string",
	"[]string":          "a list of strings",
	"map[string]string": "a mapping of names to strings",
}

// schemaTypes are the types an unknown field can be found in.
var schemaTypes = map[string]reflect.Type{
	"Config": reflect.TypeFor[Config](), "Log": reflect.TypeFor[Log](), "Timeouts": reflect.TypeFor[Timeouts](),
	"HTTPProxy": reflect.TypeFor[HTTPProxy](), "Listener": reflect.TypeFor[Listener](), "DNS": reflect.TypeFor[DNS](),
	"Rule": reflect.TypeFor[Rule](), "Chain": reflect.TypeFor[Chain](), "Hop": reflect.TypeFor[Hop](),
}

// explainYAML rewrites one of yaml.v3's messages about line (of the file
// whose tree is root); it returns msg unchanged when it is not a type error.
func explainYAML(root *yaml.Node, line int, msg string) string {
	if g := yamlCannot.FindStringSubmatch(msg); g != nil {
		// A list or mapping where a value belongs is about the field
		// that holds it, the outermost on the line; a bad value is about
		// the innermost.
		field := fieldName(pathAt(root, line, g[1] == "seq" || g[1] == "map"))
		want, ok := kinds[g[3]]
		switch {
		case ok:
		case strings.HasPrefix(g[3], "map["):
			want = "a mapping"
		case strings.HasPrefix(g[3], "[]"):
			want = "a list"
		default:
			want = "a block of fields"
		}
		got := "`" + g[2] + "`"
		if g[1] == "map" || g[1] == "seq" {
			got = map[string]string{"map": "a mapping", "seq": "a list"}[g[1]]
		}
		if field == "" {
			return fmt.Sprintf("%s is not %s", got, want)
		}
		return fmt.Sprintf("%s: %s is not %s", field, got, want)
	}
	if g := yamlUnknown.FindStringSubmatch(msg); g != nil {
		path := pathAt(root, line, false)
		where := "at the top level"
		if len(path) > 1 {
			where = "in " + fieldName(path[:len(path)-1])
		}
		out := fmt.Sprintf("unknown field %q %s", g[1], where)
		if t, ok := schemaTypes[g[2]]; ok {
			known := yamlKeys(t)
			if near := nearest(g[1], known); near != "" {
				out += fmt.Sprintf("; did you mean %q?", near)
			} else {
				out += " (known: " + strings.Join(known, ", ") + ")"
			}
		}
		return out
	}
	return msg
}

// pathAt finds the field that a line of the file sets: the keys and list
// indexes down to the last key or value that starts on that line, or with
// outer the first.
func pathAt(n *yaml.Node, line int, outer bool) []any {
	if n != nil && n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	var best []any
	var walk func(n *yaml.Node, path []any)
	walk = func(n *yaml.Node, path []any) {
		switch n.Kind {
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				p := append(slices.Clip(path), k.Value)
				if (k.Line == line || v.Line == line && v.Kind == yaml.ScalarNode) && (best == nil || !outer) {
					best = p
				}
				walk(v, p)
			}
		case yaml.SequenceNode:
			for i, v := range n.Content {
				p := append(slices.Clip(path), i)
				if v.Line == line && v.Kind == yaml.ScalarNode && (best == nil || !outer) {
					best = p
				}
				walk(v, p)
			}
		}
	}
	if n != nil {
		walk(n, nil)
	}
	return best
}

// yamlKeys lists the yaml names of t's fields.
func yamlKeys(t reflect.Type) []string {
	var keys []string
	for f := range t.Fields() {
		if name, _, _ := strings.Cut(f.Tag.Get("yaml"), ","); name != "" && name != "-" {
			keys = append(keys, name)
		}
	}
	return keys
}

// nearest is the candidate closest to s, if it is close enough to be a
// slip of the fingers (an edit distance of at most half its length).
func nearest(s string, candidates []string) string {
	best, bestD := "", max(1, len(s)/2)+1
	for _, c := range candidates {
		if d := editDistance(strings.ToLower(s), c); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}
