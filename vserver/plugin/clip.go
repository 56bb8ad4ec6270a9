package plugin

import "strconv"

// ClipBytes is how many bytes of a field Clip and AppendClip keep.
const ClipBytes = 128

// Clip returns s as a log line should show it: whole when it is at most
// ClipBytes long, else its first ClipBytes bytes (cut back to a whole
// UTF-8 character) followed by a marker saying how long it was. Request
// ids, client ids and reply addresses come from senders: a log line must
// not grow with what a sender chooses to send.
func Clip(s string) string {
	if len(s) <= ClipBytes {
		return s
	}
	return string(AppendClip(make([]byte, 0, ClipBytes+32), s))
}

// AppendClip appends Clip(s) to b, without allocating when b has room.
func AppendClip(b []byte, s string) []byte {
	if len(s) <= ClipBytes {
		return append(b, s...)
	}
	n := ClipBytes
	for n > 0 && n > ClipBytes-3 && s[n]&0xC0 == 0x80 { // not inside a character
		n--
	}
	b = append(b, s[:n]...)
	b = append(b, "…(clipped, "...)
	b = strconv.AppendInt(b, int64(len(s)), 10)
	return append(b, " bytes)"...)
}
