package mailparse

import (
	"regexp"
	"strings"
)

// commandNames are the commands a moderator may write at the top of a reply.
var commandNames = map[string]bool{"status": true, "priority": true, "assign": true, "note": true, "skills": true}

// commandLine matches "name: value" and "#name value" (case-insensitive),
// also "#name: value".
var commandLine = regexp.MustCompile(`^\s*(?:#\s*([A-Za-z]+)\s*:?\s+|([A-Za-z]+)\s*:\s*)(\S.*?)\s*$`)

// ParseCommands reads the commands at the very top of a reply: lines of
// the form "name: value" or "#name value", names status, priority, assign,
// note and skills in any case. Blank lines may come before and between
// them; the first other line, an unknown name included, ends the commands.
// rest is the reply without the command lines.
func ParseCommands(reply string) (cmds []Command, rest string) {
	lines := strings.Split(reply, "\n")
	i := 0
	end := 0 // lines before end are commands or blank
	for ; i < len(lines); i++ {
		l := lines[i]
		if isBlank(l) {
			continue
		}
		c, ok := parseCommand(l)
		if !ok {
			break
		}
		cmds = append(cmds, c)
		end = i + 1
	}
	if len(cmds) == 0 {
		return nil, strings.Trim(reply, "\n")
	}
	return cmds, strings.Join(trimBlank(lines[end:]), "\n")
}

func parseCommand(l string) (Command, bool) {
	m := commandLine.FindStringSubmatch(l)
	if m == nil {
		return Command{}, false
	}
	name := m[1]
	if name == "" {
		name = m[2]
	}
	name = strings.ToLower(name)
	if !commandNames[name] {
		return Command{}, false
	}
	value := strings.TrimSpace(m[3])
	if value == "" {
		return Command{}, false // only white space the pattern did not know, like \v
	}
	return Command{Name: name, Value: value, Line: strings.TrimSpace(l)}, true
}
