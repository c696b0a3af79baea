//! [`Ipvs`], the entry point: every IPVS command as a method, each named
//! after the ipvsadm invocation it matches.

use std::path::Path;

use crate::constants::{IPVS_CMD_ATTR_DEST, IP_VS_PENAME_MAXLEN, IP_VS_SCHEDNAME_MAXLEN};
use crate::destination::attr::DestAttr;
use crate::destination::{Destination, DestinationConfig, DestinationKey, MAX_WEIGHT};
use crate::error::{Error, InvalidRequest, Result};
use crate::info::{Info, Timeouts, Version};
use crate::message::{IpvsAttr, IpvsCmd, IpvsMessage};
use crate::service::attr::ServiceAttr;
use crate::service::{AddressFamily, Service, ServiceConfig, ServiceKey};
use crate::socket::{Failure, Transport};

/// How often a read-only request is made, while the kernel flags its dump
/// as interrupted or the socket fails.
const READ_ATTEMPTS: usize = 5;

/// One virtual service with its destinations, as `ipvsadm -Ln` lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableEntry {
    /// The service.
    pub service: Service,
    /// Its destinations, in the kernel's order.
    pub destinations: Vec<Destination>,
}

/// A connection to the IPVS of one network namespace.
///
/// Methods block for one round trip (or one dump) with the kernel. Every
/// command needs CAP_NET_ADMIN, reads included, in the initial user
/// namespace (the family's commands are `GENL_ADMIN_PERM`: a capability
/// in a container's own user namespace is not enough); without it they
/// fail with [`Error::PermissionDenied`].
#[derive(Debug)]
pub struct Ipvs {
    pub(crate) transport: Transport,
}

impl Ipvs {
    /// How many times this handle replaced its netlink socket because an
    /// error had left it in an unknown state: a socket error while an
    /// answer was read (ENOBUFS when the kernel could not queue it), an
    /// answer that could not be decoded, or a dump the kernel still held.
    /// A read-only request is then made again on the new socket; a command
    /// that changes the table is not (see [`Error::Unacknowledged`]). The
    /// daemons export it as a counter.
    pub fn socket_reopens(&self) -> u64 {
        self.transport.reopens()
    }
}

impl Ipvs {
    /// Connects to the IPVS of the caller's network namespace.
    pub fn connect() -> Result<Self> {
        Ok(Ipvs {
            transport: Transport::open(None)?,
        })
    }

    /// Connects to the IPVS of the network namespace at `path`
    /// (`/run/netns/NAME`, `/proc/PID/ns/net`), like `ip netns exec NAME
    /// ipvsadm`, without moving the calling thread.
    pub fn connect_in_netns(path: impl AsRef<Path>) -> Result<Self> {
        Ok(Ipvs {
            transport: Transport::open(Some(path.as_ref()))?,
        })
    }

    /// The IPVS version and connection table size, like `ipvsadm --version`.
    pub fn info(&mut self) -> Result<Info> {
        let operation = "IPVS_CMD_GET_INFO";
        let (version, size) = retry_read(
            || operation.into(),
            || {
                let (mut version, mut size) = (None, None);
                self.transport.query(
                    IpvsMessage::new(IpvsCmd::GetInfo, vec![]),
                    false,
                    |answer| {
                        for attr in answer.attrs {
                            match attr {
                                IpvsAttr::InfoVersion(v) => version = Some(v),
                                IpvsAttr::InfoConnTabSize(s) => size = Some(s),
                                _ => {}
                            }
                        }
                        Ok(())
                    },
                )?;
                Ok((version, size))
            },
        )?;
        let missing = |name: &str| Error::Decode {
            operation: operation.into(),
            message: format!("{name}: missing"),
        };
        Ok(Info {
            version: Version(version.ok_or_else(|| missing("IPVS_INFO_ATTR_VERSION"))?),
            conn_table_size: size.ok_or_else(|| missing("IPVS_INFO_ATTR_CONN_TAB_SIZE"))?,
        })
    }

    /// The connection timeouts, like `ipvsadm -L --timeout`.
    pub fn timeouts(&mut self) -> Result<Timeouts> {
        retry_read(
            || "IPVS_CMD_GET_CONFIG".into(),
            || {
                let mut timeouts = Timeouts::default();
                self.transport.query(
                    IpvsMessage::new(IpvsCmd::GetConfig, vec![]),
                    false,
                    |answer| {
                        for attr in answer.attrs {
                            match attr {
                                IpvsAttr::TimeoutTcp(t) => timeouts.tcp = t,
                                IpvsAttr::TimeoutTcpFin(t) => timeouts.tcp_fin = t,
                                IpvsAttr::TimeoutUdp(t) => timeouts.udp = t,
                                _ => {}
                            }
                        }
                        Ok(())
                    },
                )?;
                Ok(timeouts)
            },
        )
    }

    /// Sets the connection timeouts, like `ipvsadm --set TCP TCPFIN UDP`
    /// (a 0 leaves that timeout as it is).
    pub fn set_timeouts(&mut self, timeouts: Timeouts) -> Result<()> {
        let attrs = vec![
            IpvsAttr::TimeoutTcp(timeouts.tcp),
            IpvsAttr::TimeoutTcpFin(timeouts.tcp_fin),
            IpvsAttr::TimeoutUdp(timeouts.udp),
        ];
        self.transport
            .execute(IpvsMessage::new(IpvsCmd::SetConfig, attrs))
            .map_err(|f| f.into_error("IPVS_CMD_SET_CONFIG"))
    }

    /// Every virtual service with its statistics, like the service lines of
    /// `ipvsadm -Ln --stats`.
    pub fn services(&mut self) -> Result<Vec<Service>> {
        retry_read(
            || "IPVS_CMD_GET_SERVICE".into(),
            || {
                let mut services = Vec::new();
                self.transport.query(
                    IpvsMessage::new(IpvsCmd::GetService, vec![]),
                    true,
                    |answer| {
                        services.push(service_of(answer)?);
                        Ok(())
                    },
                )?;
                Ok(services)
            },
        )
    }

    /// One virtual service, like `ipvsadm -Ln -t VIP:PORT` (service line).
    pub fn service(&mut self, key: &ServiceKey) -> Result<Service> {
        let request =
            IpvsMessage::new(IpvsCmd::GetService, vec![IpvsAttr::Service(key.to_attrs())]);
        retry_read(
            || format!("IPVS_CMD_GET_SERVICE {key}"),
            || {
                let mut service = None;
                match self.transport.query(request.clone(), false, |answer| {
                    service = Some(service_of(answer)?);
                    Ok(())
                }) {
                    Err(Failure::Errno(libc::ESRCH)) => Ok(None),
                    result => result.map(|()| service),
                }
            },
        )?
        .ok_or(Error::ServiceNotFound(*key))
    }

    /// The destinations of one service with their statistics, like the
    /// real-server lines of `ipvsadm -Ln --stats -t VIP:PORT`.
    pub fn destinations(&mut self, key: &ServiceKey) -> Result<Vec<Destination>> {
        self.destinations_of_service(key, Destination::decode)
    }

    /// [`Ipvs::destinations`] without their counters and connection
    /// counts: each one's key and settings, as a health checker compares
    /// them with the weights it wants, read for less (the counters are
    /// not decoded).
    pub fn destination_settings(
        &mut self,
        key: &ServiceKey,
    ) -> Result<Vec<(DestinationKey, DestinationConfig)>> {
        self.destinations_of_service(key, Destination::decode_settings)
    }

    /// The destinations of the service `key`, each decoded by `decode`;
    /// `ServiceNotFound` if there is no such service.
    fn destinations_of_service<T>(
        &mut self,
        key: &ServiceKey,
        decode: fn(
            &[u8],
            AddressFamily,
        ) -> std::result::Result<T, netlink_packet_core::DecodeError>,
    ) -> Result<Vec<T>> {
        let destinations = dump_destinations(&mut self.transport, key, decode)?;
        // The kernel answers an empty dump, not an error, for a service that
        // does not exist; tell the two apart only when it matters.
        if destinations.is_empty() {
            self.service(key)?;
        }
        Ok(destinations)
    }

    /// The whole table with statistics, like `ipvsadm -Ln --stats --exact`:
    /// one service dump, then one destination dump per service.
    pub fn dump(&mut self) -> Result<Vec<TableEntry>> {
        self.dump_parallel(1)
    }

    /// [`Ipvs::dump`] with the per-service destination dumps spread over
    /// `sockets` sockets on as many threads. The kernel serves each socket
    /// independently, so on a director with several CPUs a large table is
    /// read in a fraction of the time. The result is in the same order as
    /// `dump`'s.
    pub fn dump_parallel(&mut self, sockets: usize) -> Result<Vec<TableEntry>> {
        let services = self.services()?;
        let sockets = sockets.clamp(1, services.len().max(1));
        if sockets == 1 {
            return services
                .into_iter()
                .map(|service| {
                    let destinations = destinations_of(&mut self.transport, &service.key)?;
                    Ok(TableEntry {
                        service,
                        destinations,
                    })
                })
                .collect();
        }
        let mut transports = vec![];
        for _ in 1..sockets {
            transports.push(self.transport.reopen()?);
        }
        let chunk = services.len().div_ceil(sockets);
        let mut results: Vec<Result<Vec<Vec<Destination>>>> = Vec::new();
        std::thread::scope(|scope| {
            let mut chunks = services.chunks(chunk);
            let first = chunks.next().unwrap_or_default();
            let workers: Vec<_> = chunks
                .zip(transports.iter_mut())
                .map(|(part, transport)| {
                    scope.spawn(move || {
                        part.iter()
                            .map(|s| destinations_of(transport, &s.key))
                            .collect()
                    })
                })
                .collect();
            results.push(
                first
                    .iter()
                    .map(|s| destinations_of(&mut self.transport, &s.key))
                    .collect(),
            );
            for worker in workers {
                results.push(worker.join().unwrap_or_else(|_| {
                    Err(Error::DumpThread {
                        operation: "IPVS_CMD_GET_DEST".into(),
                    })
                }));
            }
        });
        let mut destinations = Vec::with_capacity(services.len());
        for part in results {
            destinations.extend(part?);
        }
        Ok(services
            .into_iter()
            .zip(destinations)
            .map(|(service, destinations)| TableEntry {
                service,
                destinations,
            })
            .collect())
    }

    /// Adds a virtual service, like `ipvsadm -A -t VIP:PORT -s SCHED ...`.
    pub fn new_service(&mut self, key: &ServiceKey, config: &ServiceConfig) -> Result<()> {
        validate_service(config)?;
        let request = service_request(IpvsCmd::NewService, key, Some(config));
        self.transport
            .execute(request)
            .map_err(|f| service_error(f, "IPVS_CMD_NEW_SERVICE", key, Some(config)))
    }

    /// Changes a virtual service's settings, like `ipvsadm -E -t VIP:PORT ...`.
    pub fn set_service(&mut self, key: &ServiceKey, config: &ServiceConfig) -> Result<()> {
        validate_service(config)?;
        let request = service_request(IpvsCmd::SetService, key, Some(config));
        self.transport
            .execute(request)
            .map_err(|f| service_error(f, "IPVS_CMD_SET_SERVICE", key, Some(config)))
    }

    /// Deletes a virtual service and its destinations, like `ipvsadm -D -t VIP:PORT`.
    pub fn del_service(&mut self, key: &ServiceKey) -> Result<()> {
        let request = service_request(IpvsCmd::DelService, key, None);
        self.transport
            .execute(request)
            .map_err(|f| service_error(f, "IPVS_CMD_DEL_SERVICE", key, None))
    }

    /// Adds a destination, like `ipvsadm -a -t VIP:PORT -r RIP:PORT -m -w N`.
    pub fn new_destination(
        &mut self,
        service: &ServiceKey,
        destination: &DestinationKey,
        config: &DestinationConfig,
    ) -> Result<()> {
        validate_destination(config)?;
        let request = dest_request(IpvsCmd::NewDest, service, destination, Some(config));
        self.transport
            .execute(request)
            .map_err(|f| destination_error(f, "IPVS_CMD_NEW_DEST", service, destination))
    }

    /// Replaces a destination's settings, like `ipvsadm -e -t VIP:PORT -r
    /// RIP:PORT -m -w N -x U -y L`. The kernel takes only full entries:
    /// every field of `config` is sent.
    pub fn set_destination(
        &mut self,
        service: &ServiceKey,
        destination: &DestinationKey,
        config: &DestinationConfig,
    ) -> Result<()> {
        validate_destination(config)?;
        let request = dest_request(IpvsCmd::SetDest, service, destination, Some(config));
        self.transport
            .execute(request)
            .map_err(|f| destination_error(f, "IPVS_CMD_SET_DEST", service, destination))
    }

    /// Removes a destination, like `ipvsadm -d -t VIP:PORT -r RIP:PORT`.
    pub fn del_destination(
        &mut self,
        service: &ServiceKey,
        destination: &DestinationKey,
    ) -> Result<()> {
        let request = dest_request(IpvsCmd::DelDest, service, destination, None);
        self.transport
            .execute(request)
            .map_err(|f| destination_error(f, "IPVS_CMD_DEL_DEST", service, destination))
    }

    /// Sets one destination's weight and nothing else, like `ipvsadm -e -t
    /// VIP:PORT -r RIP:PORT -w N` with the destination's other options
    /// repeated: reads the entry, then sends it back whole with the new
    /// weight, since the kernel has no partial update. Returns the weight it
    /// had. A weight out of range is refused before anything is sent; a
    /// missing service or destination is reported with nothing changed.
    pub fn set_weight(
        &mut self,
        service: &ServiceKey,
        destination: &DestinationKey,
        weight: u32,
    ) -> Result<u32> {
        if weight > MAX_WEIGHT {
            return Err(Error::WeightOutOfRange(weight));
        }
        let current = self
            .destinations(service)?
            .into_iter()
            .find(|d| d.key == *destination)
            .ok_or(Error::DestinationNotFound {
                service: *service,
                destination: *destination,
            })?;
        if current.config.weight != weight {
            let config = DestinationConfig {
                weight,
                ..current.config
            };
            self.set_destination(service, destination, &config)?;
        }
        Ok(current.config.weight)
    }

    /// Zeroes the counters of one service (`ipvsadm -Z -t VIP:PORT`) or of
    /// the whole table (`ipvsadm -Z`).
    pub fn zero(&mut self, service: Option<&ServiceKey>) -> Result<()> {
        let attrs = service
            .map(|key| vec![IpvsAttr::Service(key.to_attrs())])
            .unwrap_or_default();
        self.transport
            .execute(IpvsMessage::new(IpvsCmd::Zero, attrs))
            .map_err(|failure| match (failure, service) {
                (Failure::Errno(libc::ESRCH), Some(key)) => Error::ServiceNotFound(*key),
                (f, _) => f.into_error("IPVS_CMD_ZERO"),
            })
    }

    /// Deletes every virtual service, like `ipvsadm -C`.
    pub fn flush(&mut self) -> Result<()> {
        self.transport
            .execute(IpvsMessage::new(IpvsCmd::Flush, vec![]))
            .map_err(|f| f.into_error("IPVS_CMD_FLUSH"))
    }
}

/// Makes a read-only request again while it fails in a way another
/// attempt may get past: a dump the kernel flags as interrupted by a change of
/// the table, or a socket error (the transport then replaces the socket
/// before the next attempt, see [`Failure::is_socket_error`]). `operation`
/// names it in an error (built only then).
pub(crate) fn retry_read<T>(
    operation: impl Fn() -> String,
    mut attempt: impl FnMut() -> Result<T, Failure>,
) -> Result<T> {
    let mut last = Failure::Interrupted;
    for _ in 0..READ_ATTEMPTS {
        match attempt() {
            Ok(value) => return Ok(value),
            Err(failure @ Failure::Interrupted) => last = failure,
            Err(failure) if failure.is_socket_error() => last = failure,
            Err(failure) => return Err(failure.into_error(operation())),
        }
    }
    let (operation, attempts) = (operation(), READ_ATTEMPTS);
    Err(match last {
        Failure::Io(source) | Failure::Receive(source) => Error::SocketRetried {
            operation,
            attempts,
            source,
        },
        _ => Error::DumpInterrupted {
            operation,
            attempts,
        },
    })
}

fn destinations_of(transport: &mut Transport, key: &ServiceKey) -> Result<Vec<Destination>> {
    dump_destinations(transport, key, Destination::decode)
}

/// The destinations of the service `key`, each decoded by `decode`.
fn dump_destinations<T>(
    transport: &mut Transport,
    key: &ServiceKey,
    decode: fn(&[u8], AddressFamily) -> std::result::Result<T, netlink_packet_core::DecodeError>,
) -> Result<Vec<T>> {
    let family = key.family();
    retry_read(
        || format!("IPVS_CMD_GET_DEST {key}"),
        || {
            let request =
                IpvsMessage::new(IpvsCmd::GetDest, vec![IpvsAttr::Service(key.to_attrs())]);
            let mut destinations = Vec::new();
            transport.query_attrs(request, true, |kind, value| {
                if kind == IPVS_CMD_ATTR_DEST {
                    destinations.push(decode(value, family)?);
                }
                Ok(())
            })?;
            Ok(destinations)
        },
    )
}

pub(crate) fn service_of(answer: IpvsMessage) -> Result<Service, Failure> {
    answer
        .attrs
        .iter()
        .find_map(|attr| match attr {
            IpvsAttr::Service(attrs) => Some(Service::from_attrs(attrs).map_err(Failure::from)),
            _ => None,
        })
        .unwrap_or_else(|| Err(Failure::Decode("IPVS_CMD_ATTR_SERVICE: missing".into())))
}

pub(crate) fn service_request(
    cmd: IpvsCmd,
    key: &ServiceKey,
    config: Option<&ServiceConfig>,
) -> IpvsMessage {
    let mut attrs: Vec<ServiceAttr> = key.to_attrs();
    if let Some(config) = config {
        attrs.extend(config.to_attrs(key.family()));
    }
    IpvsMessage::new(cmd, vec![IpvsAttr::Service(attrs)])
}

pub(crate) fn dest_request(
    cmd: IpvsCmd,
    service: &ServiceKey,
    destination: &DestinationKey,
    config: Option<&DestinationConfig>,
) -> IpvsMessage {
    let mut attrs: Vec<DestAttr> = destination.to_attrs();
    if let Some(config) = config {
        attrs.extend(config.to_attrs());
    }
    IpvsMessage::new(
        cmd,
        vec![IpvsAttr::Service(service.to_attrs()), IpvsAttr::Dest(attrs)],
    )
}

/// The errors of the service commands: ESRCH is a missing service, EEXIST
/// one that is there already, and ENOENT on NEW/SET_SERVICE a scheduler (or
/// the persistence engine, when one was named) the kernel could not find
/// or load.
fn service_error(
    failure: Failure,
    operation: &str,
    key: &ServiceKey,
    config: Option<&ServiceConfig>,
) -> Error {
    match (failure, config) {
        (Failure::Errno(libc::ESRCH), _) => Error::ServiceNotFound(*key),
        (Failure::Errno(libc::EEXIST), _) => Error::ServiceExists(*key),
        (Failure::Errno(libc::ENOENT), Some(config)) => Error::SchedulerNotFound(
            config
                .pe_name
                .clone()
                .unwrap_or_else(|| config.scheduler.clone()),
        ),
        (f, _) => f.into_error(format!("{operation} {key}")),
    }
}

/// The errors of the destination commands: ESRCH is a missing service,
/// ENOENT a missing destination, EEXIST one that is there already.
fn destination_error(
    failure: Failure,
    operation: &str,
    service: &ServiceKey,
    destination: &DestinationKey,
) -> Error {
    let (service, destination) = (*service, *destination);
    match failure {
        Failure::Errno(libc::ESRCH) => Error::ServiceNotFound(service),
        Failure::Errno(libc::ENOENT) => Error::DestinationNotFound {
            service,
            destination,
        },
        Failure::Errno(libc::EEXIST) => Error::DestinationExists {
            service,
            destination,
        },
        f => f.into_error(format!("{operation} {destination} in {service}")),
    }
}

pub(crate) fn validate_service(config: &ServiceConfig) -> Result<()> {
    if config.scheduler.is_empty() || config.scheduler.len() >= IP_VS_SCHEDNAME_MAXLEN {
        return Err(InvalidRequest::SchedulerName {
            name: config.scheduler.clone(),
        }
        .into());
    }
    if let Some(pe) = &config.pe_name {
        if pe.is_empty() || pe.len() >= IP_VS_PENAME_MAXLEN {
            return Err(InvalidRequest::PeName { name: pe.clone() }.into());
        }
    }
    Ok(())
}

/// The kernel's own checks of ip_vs_add_dest/ip_vs_edit_dest, made before
/// sending so the caller gets a named error instead of ERANGE.
pub(crate) fn validate_destination(config: &DestinationConfig) -> Result<()> {
    if config.weight > MAX_WEIGHT {
        return Err(Error::WeightOutOfRange(config.weight));
    }
    // Kernels since 6.9 refuse an upper threshold above INT_MAX.
    if config.upper_threshold > MAX_WEIGHT {
        return Err(InvalidRequest::UpperThreshold {
            upper: config.upper_threshold,
        }
        .into());
    }
    if config.lower_threshold > config.upper_threshold {
        return Err(InvalidRequest::LowerThreshold {
            lower: config.lower_threshold,
            upper: config.upper_threshold,
        }
        .into());
    }
    Ok(())
}
