package tickets

import "strings"

// prefixed qualifies a column list with a table alias: "a, b" -> "u.a, u.b".
func prefixed(alias, columns string) string {
	cols := strings.Split(columns, ",")
	for i, c := range cols {
		cols[i] = alias + "." + strings.TrimSpace(c)
	}
	return strings.Join(cols, ", ")
}
