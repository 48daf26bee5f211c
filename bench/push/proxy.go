package push

import "github.com/easd/easd/bench/internal/imapproxy"

// Counts and Conns are the snapshots of the counting IMAP proxy
// (bench/internal/imapproxy) that the reports carry: the commands easd
// sent in a phase, and the connections open at a checkpoint.
type (
	Counts = imapproxy.Counts
	Conns  = imapproxy.Conns
)
