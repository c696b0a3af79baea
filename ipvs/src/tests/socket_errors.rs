//! A socket error while an answer is read (ENOBUFS when the kernel could
//! not queue it): a read-only request is made again on a new socket, a
//! bounded number of times; a command that changes the table is not sent
//! again; the handle works again on the next call. Against the scripted
//! kernel of [`super::fake_kernel`], which refuses a second dump on a
//! socket that still holds one, as the real one does.

use std::net::SocketAddr;

use super::fake_kernel::{connect, lock, FakeService};
use crate::message::IpvsCmd;
use crate::{DestinationConfig, DestinationKey, Error, ForwardMethod, ServiceKey};

fn vip(n: u8) -> ServiceKey {
    ServiceKey::tcp(SocketAddr::from(([198, 18, 0, n], 80)))
}

fn rip(n: u8) -> DestinationKey {
    DestinationKey::new(SocketAddr::from(([198, 18, 1, n], 80)))
}

/// Services 1 to `services`, the first with `first` destinations, the
/// others with one each; the destination's weight is its number.
fn table(services: u8, first: u8) -> Vec<FakeService> {
    (1..=services)
        .map(|s| FakeService {
            key: vip(s),
            destinations: (1..=if s == 1 { first } else { 1 })
                .map(|d| {
                    let config = DestinationConfig::new(ForwardMethod::Masquerade, d.into());
                    (rip(d), config)
                })
                .collect(),
        })
        .collect()
}

/// The table as (service, [(destination, weight)]).
type Weights = Vec<(ServiceKey, Vec<(DestinationKey, u32)>)>;

fn weights_of(table: &[FakeService]) -> Weights {
    table
        .iter()
        .map(|s| {
            let destinations = s.destinations.iter().map(|(k, c)| (*k, c.weight));
            (s.key, destinations.collect())
        })
        .collect()
}

fn sent(requests: &[IpvsCmd], cmd: IpvsCmd) -> usize {
    requests.iter().filter(|&&c| c == cmd).count()
}

#[test]
fn enobufs_in_the_middle_of_a_dump_makes_it_again_on_a_new_socket() {
    let expected = table(3, 5);
    let (mut ipvs, kernel) = connect(expected.clone());
    // Reads 1 and 2 are the service dump (two datagrams of at most two
    // answers); reads 3 to 5 the first service's five destinations: the
    // fourth read fails after two of them came.
    lock(&kernel).failing_reads = vec![4];
    let dump = ipvs.dump().expect("the dump made again");
    let weights: Weights = dump
        .iter()
        .map(|entry| {
            let destinations = entry.destinations.iter().map(|d| (d.key, d.config.weight));
            (entry.service.key, destinations.collect())
        })
        .collect();
    assert_eq!(weights, weights_of(&expected), "whole, nothing twice");
    assert_eq!(ipvs.socket_reopens(), 1);
    let kernel = lock(&kernel);
    // The old socket still held the dump: a second GET_DEST on it would
    // have been refused with EBUSY.
    assert_eq!(kernel.sockets, 2);
    assert_eq!(sent(&kernel.requests, IpvsCmd::GetService), 1);
    assert_eq!(sent(&kernel.requests, IpvsCmd::GetDest), 3 + 1);
}

#[test]
fn enobufs_at_every_attempt_is_a_clear_error() {
    let (mut ipvs, kernel) = connect(table(2, 2));
    lock(&kernel).failing_from = Some(1);
    let error = ipvs.dump().expect_err("every read fails");
    assert!(
        matches!(
            error,
            Error::SocketRetried { ref operation, attempts: 5, ref source }
                if operation == "IPVS_CMD_GET_SERVICE"
                    && source.raw_os_error() == Some(libc::ENOBUFS)
        ),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "IPVS_CMD_GET_SERVICE: netlink socket error on each of 5 attempts, each on a new socket"
    );
    assert_eq!(sent(&lock(&kernel).requests, IpvsCmd::GetService), 5);
    assert_eq!(ipvs.socket_reopens(), 4);
    // Once the kernel can queue answers again, the next call works, on a
    // new socket.
    lock(&kernel).failing_from = None;
    assert_eq!(ipvs.services().expect("services").len(), 2);
    assert_eq!(ipvs.socket_reopens(), 5);
    assert_eq!(lock(&kernel).sockets, 6);
}

#[test]
fn a_command_whose_ack_is_lost_is_not_sent_again() {
    let (mut ipvs, kernel) = connect(table(1, 2));
    let reads = lock(&kernel).reads;
    lock(&kernel).failing_reads = vec![reads + 1];
    let config = DestinationConfig::new(ForwardMethod::Masquerade, 7);
    let error = ipvs
        .set_destination(&vip(1), &rip(2), &config)
        .expect_err("the ACK was lost");
    assert!(
        matches!(
            error,
            Error::Unacknowledged { ref operation, ref source }
                if operation == "IPVS_CMD_SET_DEST 198.18.1.2:80 in TCP 198.18.0.1:80"
                    && source.raw_os_error() == Some(libc::ENOBUFS)
        ),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .contains("the change may or may not have been made"),
        "{error}"
    );
    assert_eq!(sent(&lock(&kernel).requests, IpvsCmd::SetDest), 1);
    // The next call works, on a new socket, and shows the kernel had made
    // the change.
    let destinations = ipvs.destinations(&vip(1)).expect("destinations");
    let weights: Vec<_> = destinations
        .iter()
        .map(|d| (d.key, d.config.weight))
        .collect();
    assert_eq!(weights, vec![(rip(1), 1), (rip(2), 7)]);
    assert_eq!(ipvs.socket_reopens(), 1);
    let kernel = lock(&kernel);
    assert_eq!(kernel.sockets, 2);
    assert_eq!(sent(&kernel.requests, IpvsCmd::SetDest), 1);
}
