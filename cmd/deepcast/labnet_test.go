package main

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// The fault lab's network: one Linux network namespace per node, each
// joined by a veth pair to a "fabric" namespace that forwards between
// them, with tbf rate limits on both ends of every link (this kernel has no
// netem: delay is added in user space by the viewers' -rtt). The test
// process reaches every node through one more link from its own
// namespace, over a route it adds for the lab's prefix and removes at the
// end. Every address lives inside namespaces the test made.

// labPrefix is the lab's address space, 10.99.0.0/16: node i's link is
// 10.99.i.0/24 (fabric .1, node .2); the test's own link is 10.99.250.0/24.
const labPrefix = "10.99"

// labHost is one node's namespace.
type labHost struct {
	Name string
	NS   string // namespace name
	IP   string // the node's address
	link string // the fabric's end of its veth
	idx  int
}

// labNet is the topology.
type labNet struct {
	t      *testing.T
	id     string
	fabric string
	hosts  map[string]*labHost
	order  []string
}

// labRates are the tbf rates of each kind of link, both directions.
// ("store" is the S3 bench's object store, not a lab node.)
var labRates = map[string]string{"origin": "400mbit", "home": "800mbit", "deep": "400mbit", "router": "100mbit", "clients": "1gbit", "store": "1gbit"}

// run runs a command and fails the test on error.
func (n *labNet) run(args ...string) {
	n.t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		n.t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// labNamespacesSupported says why the lab cannot run here, or "".
func labNamespacesSupported() string {
	if os.Geteuid() != 0 {
		return "needs root (network namespaces, veth, tc)"
	}
	for _, c := range []string{"ip", "tc"} {
		if _, err := exec.LookPath(c); err != nil {
			return c + " not installed (iproute2)"
		}
	}
	return ""
}

// removeStaleLab deletes what an earlier lab run that died left behind:
// namespaces named dcl<pid>-… of processes that no longer run, their host
// link, and the route.
func removeStaleLab() {
	out, _ := exec.Command("ip", "netns", "list").Output()
	for line := range strings.Lines(string(out)) {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		pidPart, ok := strings.CutPrefix(name, "dcl")
		if !ok {
			continue
		}
		pidStr, _, _ := strings.Cut(pidPart, "-")
		if pid, err := strconv.Atoi(pidStr); err == nil {
			if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil && pid != os.Getpid() {
				continue // a lab that still runs
			}
			exec.Command("ip", "netns", "delete", name).Run()
			exec.Command("ip", "link", "delete", "dcl"+pidStr+"h").Run()
		}
	}
	exec.Command("ip", "route", "delete", labPrefix+".0.0/16").Run()
}

// newLabNet builds the fabric and one namespace per name; kinds gives each
// name's link kind (labRates). Everything is removed when the test ends.
func newLabNet(t *testing.T, names []string, kinds map[string]string) *labNet {
	t.Helper()
	removeStaleLab()
	n := &labNet{t: t, id: "dcl" + strconv.Itoa(os.Getpid()), hosts: map[string]*labHost{}, order: names}
	n.fabric = n.id + "-fabric"
	t.Cleanup(n.remove)
	n.run("ip", "netns", "add", n.fabric)
	n.run("ip", "netns", "exec", n.fabric, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	n.run("ip", "-n", n.fabric, "link", "set", "lo", "up")
	// The test's own way in.
	hostIf, fabIf := n.id+"h", n.id+"H"
	n.run("ip", "link", "add", hostIf, "type", "veth", "peer", "name", fabIf)
	n.run("ip", "link", "set", fabIf, "netns", n.fabric)
	// No IPv6 on the host's end: its link-local address would appear 1 to
	// 2 s after the link comes up (duplicate address detection), and
	// Chromium, which runs in this namespace, takes any address change for
	// a new network and fails every request under way with
	// ERR_NETWORK_CHANGED (a CI run lost the lab browser's page and
	// dash.js so).
	if _, err := os.Stat("/proc/sys/net/ipv6/conf/" + hostIf); err == nil {
		n.run("sysctl", "-qw", "net.ipv6.conf."+hostIf+".disable_ipv6=1")
	}
	n.run("ip", "addr", "add", labPrefix+".250.2/24", "dev", hostIf)
	n.run("ip", "link", "set", hostIf, "up")
	n.run("ip", "-n", n.fabric, "addr", "add", labPrefix+".250.1/24", "dev", fabIf)
	n.run("ip", "-n", n.fabric, "link", "set", fabIf, "up")
	n.run("ip", "route", "add", labPrefix+".0.0/16", "via", labPrefix+".250.1")
	for i, name := range names {
		h := &labHost{Name: name, NS: n.id + "-" + name, idx: i + 1, IP: fmt.Sprintf("%s.%d.2", labPrefix, i+1)}
		h.link = fmt.Sprintf("%sf%d", n.id, h.idx)
		nodeIf := fmt.Sprintf("%sn%d", n.id, h.idx)
		n.run("ip", "netns", "add", h.NS)
		n.run("ip", "-n", h.NS, "link", "set", "lo", "up")
		n.run("ip", "link", "add", h.link, "type", "veth", "peer", "name", nodeIf)
		n.run("ip", "link", "set", h.link, "netns", n.fabric)
		n.run("ip", "link", "set", nodeIf, "netns", h.NS)
		n.run("ip", "-n", n.fabric, "addr", "add", fmt.Sprintf("%s.%d.1/24", labPrefix, h.idx), "dev", h.link)
		n.run("ip", "-n", h.NS, "addr", "add", h.IP+"/24", "dev", nodeIf)
		n.run("ip", "-n", n.fabric, "link", "set", h.link, "up")
		n.run("ip", "-n", h.NS, "link", "set", nodeIf, "up")
		n.run("ip", "-n", h.NS, "route", "add", "default", "via", fmt.Sprintf("%s.%d.1", labPrefix, h.idx))
		if rate := labRates[kinds[name]]; rate != "" {
			// Both directions: what the node sends, and what it receives.
			n.run("tc", "-n", h.NS, "qdisc", "add", "dev", nodeIf, "root", "tbf", "rate", rate, "burst", "1mb", "latency", "50ms")
			n.run("tc", "-n", n.fabric, "qdisc", "add", "dev", h.link, "root", "tbf", "rate", rate, "burst", "1mb", "latency", "50ms")
		}
		n.hosts[name] = h
	}
	return n
}

// host returns a node's namespace.
func (n *labNet) host(name string) *labHost { return n.hosts[name] }

// partition takes a node's link down (or up again): its packets go nowhere.
func (n *labNet) partition(name string, down bool) {
	state := "up"
	if down {
		state = "down"
	}
	n.run("ip", "-n", n.fabric, "link", "set", n.hosts[name].link, state)
}

// command returns a command that runs bin with args in host's namespace.
func (n *labNet) command(host *labHost, bin string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", host.NS, bin}, args...)...)
}

func (n *labNet) remove() {
	for _, name := range n.order {
		if h := n.hosts[name]; h != nil {
			exec.Command("ip", "netns", "delete", h.NS).Run()
		}
	}
	exec.Command("ip", "netns", "delete", n.fabric).Run()
	exec.Command("ip", "link", "delete", n.id+"h").Run()
	exec.Command("ip", "route", "delete", labPrefix+".0.0/16").Run()
}
