package admin

import "testing"

func TestUploadName(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"report.pdf", "report.pdf"},
		{`C:\Users\ann\report.pdf`, "report.pdf"},
		{"../../etc/passwd", "passwd"},
		{"a\x00b\r\n.txt", "ab.txt"},
		{"invoice\u202egpj.exe", "invoicegpj.exe"}, // a direction override would show it as invoiceexe.jpg
		{"", "file"},
		{"..", "file"},
	} {
		if got := uploadName(tc.in); got != tc.want {
			t.Errorf("uploadName(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
