package iptables

import "strings"

// SplitRule splits one line of `iptables -S` into arguments; a
// double-quoted argument (a comment with spaces) is one argument without
// its quotes, and a backslash in it escapes the next character.
func SplitRule(line string) []string {
	var args []string
	var cur strings.Builder
	quoted, in := false, false
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == '"':
			quoted, in = !quoted, true
		case c == '\\' && quoted && i+1 < len(line):
			i++
			cur.WriteByte(line[i])
		case c == ' ' && !quoted:
			if in {
				args = append(args, cur.String())
				cur.Reset()
				in = false
			}
		default:
			cur.WriteByte(c)
			in = true
		}
	}
	if in {
		args = append(args, cur.String())
	}
	return args
}
