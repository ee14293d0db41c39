//! `--rt` and the options only it takes, in their own `--help` section:
//! request/response timing grew past the two flags the modes section had
//! room for (and `args.rs` past its size).

/// `--rt`: request/response timing per task, connection summaries.
#[derive(Debug, clap::Args)]
#[command(next_help_heading = "Request/response timing")]
pub struct RtArgs {
    /// Request/response timing of a TCP server (give its port with -P or
    /// -S): per task, upload (request received), process (until the first
    /// response byte is sent), download (until the response is
    /// acknowledged); one line per connection when it closes (bytes each
    /// way, retransmits, min RTT, and whether it closed mid-task); per-port
    /// statistics every --interval SECS (default 60) and at exit. Kernel
    /// functions where they can be hooked (fentry/fexit, else kprobes),
    /// else tracepoints (6.3+); --backend forces one way, --debug says.
    #[arg(long)]
    pub rt: bool,

    /// With --rt: print histograms of the three times every second instead
    /// of one line per task.
    #[arg(long)]
    pub rt_summary: bool,

    /// With --rt: time this host's client sockets instead (the server's
    /// port is -P or -D): per task, the request being sent, the wait for
    /// the first response byte, the response arriving. Implied by -D
    /// without -P/-S.
    #[arg(long)]
    pub client: bool,

    /// With --rt: how tasks and connection ends are written. `text`: our
    /// line per task and per close (the default; --json gives JSON
    /// records). `tcprt`: Alibaba TCP-RT's V6 log lines, as in its
    /// rt-network-log files, for tcprt's parsers: `V6 R|P|W|N|E <start s>
    /// <start us> <peer ip:port> <local ip:port> ...` (R server task, P
    /// client task, E connection closed, W closed while sending, N closed
    /// while receiving; fields in the README); the per-port statistics
    /// as its rt-network-stats lines (`<s> all <port> ...`, `P<port>` for
    /// client sides). Not with --json or --rt-summary.
    #[arg(long, value_enum, default_value_t = RtFormat::Text, value_name = "FORMAT")]
    pub rt_format: RtFormat,

    /// With --rt: `http` reads the first bytes of each task where the
    /// application reads and writes them (read/recvfrom/readv/recvmsg,
    /// write/sendto/writev/sendmsg; not sendfile or io_uring):
    /// an HTTP/1.x request line gives the method, a status line the
    /// status (text: ` GET 200` after the task number); TLS records are
    /// told apart, so that an HTTPS connection's handshake is no task and
    /// each application-data exchange is one (` tls`), on the server's
    /// side and on the client's. `tcp` (the default): tasks from the
    /// data's direction changes only.
    #[arg(long, value_enum, default_value_t = RtProto::Tcp, value_name = "PROTO")]
    pub rt_proto: RtProto,
}

/// `--rt-proto`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum RtProto {
    /// Direction changes only.
    Tcp,
    /// HTTP/1.x method and status; TLS records.
    Http,
}

/// `--rt-format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum RtFormat {
    /// Our own line (or JSON with --json).
    Text,
    /// Alibaba TCP-RT's V6 log lines.
    Tcprt,
}
