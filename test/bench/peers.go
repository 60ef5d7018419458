package main

import "debug/buildinfo"

// A peer is another program that chains connections through SOCKS5 hops,
// measured beside veilchain in the same run and in the same three roles:
// two hops and a front end chaining through them, three processes,
// SOCKS5 on every link, all on 127.0.0.1. Peers are built outside this
// repository (BENCHMARKS.md says how) and given by path.
type peer struct {
	name, path string
	env        []string // added to the environment of its processes
	about      string   // how it plays the roles, for the table's legend
	hop        func(port string) []string
	front      func(port, hop1, hop2 string) []string
}

// peersGiven lists the peers named on the command line.
func peersGiven() []peer {
	var ps []peer
	if *glider != "" {
		// glider logs each connection only with -verbose.
		ps = append(ps, peer{
			name:  "glider",
			path:  *glider,
			about: "glider -listen socks5://… -forward socks5://hop1,socks5://hop2 (a comma chains), hops glider -listen socks5://…",
			hop:   func(port string) []string { return []string{"-listen", "socks5://127.0.0.1:" + port} },
			front: func(port, hop1, hop2 string) []string {
				return []string{"-listen", "socks5://127.0.0.1:" + port,
					"-forward", "socks5://127.0.0.1:" + hop1 + ",socks5://127.0.0.1:" + hop2}
			},
		})
	}
	if *gost != "" {
		// notls: without it gost's SOCKS5 client offers, and its server
		// picks, an extended method (0x80) that wraps the link in TLS; the
		// others speak plain SOCKS5. Its default log level (info) writes
		// a line for every connection.
		ps = append(ps, peer{
			name:  "gost",
			path:  *gost,
			env:   []string{"GOST_LOGGER_LEVEL=error"},
			about: "gost -L socks5://… -F socks5://hop1 -F socks5://hop2, hops gost -L socks5://…, all ?notls=true, GOST_LOGGER_LEVEL=error",
			hop:   func(port string) []string { return []string{"-L", "socks5://127.0.0.1:" + port + "?notls=true"} },
			front: func(port, hop1, hop2 string) []string {
				return []string{"-L", "socks5://127.0.0.1:" + port + "?notls=true",
					"-F", "socks5://127.0.0.1:" + hop1 + "?notls=true", "-F", "socks5://127.0.0.1:" + hop2 + "?notls=true"}
			},
		})
	}
	return ps
}

// version is the module and commit the peer was built from, as its
// binary records them (go build stamps the commit in a git work tree
// unless -buildvcs=false).
func (p peer) version() string {
	info, err := buildinfo.ReadFile(p.path)
	if err != nil {
		return "no build info: " + err.Error()
	}
	v, modified := info.Main.Version, ""
	for _, s := range info.Settings {
		switch {
		case s.Key == "vcs.revision":
			v = "commit " + s.Value[:min(len(s.Value), 12)]
		case s.Key == "vcs.modified" && s.Value == "true":
			modified = " (modified)"
		}
	}
	return v + modified + ", " + info.GoVersion
}
