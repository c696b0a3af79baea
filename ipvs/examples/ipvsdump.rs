//! Lists the IPVS table through the `ipvs` crate, like `ipvsadm -Ln
//! --stats --exact` with every column the kernel reports on one line.
//!
//! ```text
//! ipvsdump [--netns PATH] [--sockets N] [--connections] [--passes N] [--settings]
//! ```
//!
//! `--sockets N` spreads the per-service destination dumps over N sockets
//! (see `Ipvs::dump_parallel`). `--passes N` reads the table N times and
//! prints the last, to time what a daemon reading it every second pays.
//! `--settings` reads each service's destinations as a health checker
//! compares them with its weights (`Ipvs::destination_settings`: keys and
//! settings, no counters) and prints those. `--connections` adds the connection table
//! counted from `/proc/net/ip_vs_conn`: entries per virtual service, real
//! server and state, persistence templates apart. The lab's demo and
//! benchmark run it.

use std::io::{BufWriter, Write};
use std::process::ExitCode;

use std::fs::File;
use std::path::Path;

use ipvs::{ConnTableCounts, Ipvs, TableEntry};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ipvsdump: {e}");
            let mut source = std::error::Error::source(e.as_ref());
            while let Some(cause) = source {
                eprintln!("  caused by: {cause}");
                source = cause.source();
            }
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut netns = None;
    let mut sockets = 1;
    let mut connections = false;
    let mut passes = 1;
    let mut settings = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--netns" => netns = Some(args.next().ok_or("--netns needs a path")?),
            "--sockets" => sockets = args.next().ok_or("--sockets needs a number")?.parse()?,
            "--connections" => connections = true,
            "--passes" => passes = args.next().ok_or("--passes needs a number")?.parse()?,
            "--settings" => settings = true,
            "-h" | "--help" => {
                println!("usage: ipvsdump [--netns PATH] [--sockets N] [--connections] [--passes N] [--settings]");
                return Ok(());
            }
            other => return Err(format!("unknown argument {other:?}").into()),
        }
    }
    let mut ipvs = match &netns {
        Some(path) => Ipvs::connect_in_netns(path)?,
        None => Ipvs::connect()?,
    };
    let info = ipvs.info()?;
    let mut out = BufWriter::new(std::io::stdout().lock());
    writeln!(
        out,
        "IP Virtual Server version {} (size={})",
        info.version, info.conn_table_size
    )?;
    if settings {
        let mut last = Vec::new();
        for _ in 0..passes {
            last.clear();
            for service in ipvs.services()? {
                let destinations = ipvs.destination_settings(&service.key)?;
                last.push((service.key, destinations));
            }
        }
        for (service, destinations) in last {
            writeln!(out, "{service}")?;
            for (key, c) in destinations {
                writeln!(
                    out,
                    "  -> {key} {} weight={} uthreshold={} lthreshold={}",
                    c.forward, c.weight, c.upper_threshold, c.lower_threshold
                )?;
            }
        }
        out.flush()?;
        return Ok(());
    }
    let mut table = ipvs.dump_parallel(sockets)?;
    for _ in 1..passes {
        table = ipvs.dump_parallel(sockets)?;
    }
    print_table(&mut out, &table)?;
    if connections {
        // /proc/net files belong to the namespace they are opened in.
        let file = match &netns {
            Some(path) => ipvs::netns::in_netns(Path::new(path), || {
                File::open("/proc/thread-self/net/ip_vs_conn")
            })??,
            None => File::open(ipvs::proc::IP_VS_CONN_PATH)?,
        };
        let counts = ConnTableCounts::read_from(file)?;
        writeln!(out, "Connection table: {} entries", counts.entries())?;
        for (key, n) in counts.connections() {
            writeln!(out, "  connections {key}: {n}")?;
        }
        for (key, n) in counts.templates() {
            writeln!(out, "  templates {key}: {n}")?;
        }
    }
    out.flush()?;
    Ok(())
}

fn print_table(out: &mut impl Write, table: &[TableEntry]) -> std::io::Result<()> {
    for TableEntry {
        service,
        destinations,
    } in table
    {
        let config = &service.config;
        write!(out, "{} {}", service.key, config.scheduler)?;
        let flags = config.flags.scheduler_flag_names(&config.scheduler);
        if !flags.is_empty() {
            write!(out, " ({})", flags.join(","))?;
        }
        if config.flags.contains(ipvs::ServiceFlags::PERSISTENT) {
            write!(out, " persistent {}", config.timeout)?;
            if let Some(mask) = config.netmask {
                write!(out, " mask {mask}")?;
            }
        }
        if let Some(pe) = &config.pe_name {
            write!(out, " pe {pe}")?;
        }
        let s = &service.stats;
        writeln!(
            out,
            " conns={} inpkts={} outpkts={} inbytes={} outbytes={}",
            s.conns, s.in_packets, s.out_packets, s.in_bytes, s.out_bytes
        )?;
        for d in destinations {
            let c = &d.config;
            let s = &d.stats;
            writeln!(
                out,
                "  -> {} {} weight={} active={} inactive={} persistent={} uthreshold={} \
                 lthreshold={} conns={} inpkts={} outpkts={} inbytes={} outbytes={}",
                d.key,
                c.forward,
                c.weight,
                d.active_conns,
                d.inactive_conns,
                d.persistent_conns,
                c.upper_threshold,
                c.lower_threshold,
                s.conns,
                s.in_packets,
                s.out_packets,
                s.in_bytes,
                s.out_bytes
            )?;
        }
    }
    Ok(())
}
