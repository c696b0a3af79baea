//! The `icmp` check against the loopback addresses (this machine's own
//! echo replies), and its packet helpers on bytes made here.

use super::*;

#[tokio::test]
async fn icmp_echo_of_the_loopback_addresses() {
    let dir = tempfile::tempdir().expect("dir");
    let c = check("{type: icmp}", dir.path());
    for ip in ["127.0.0.1", "::1"] {
        let addr = SocketAddr::new(ip.parse().expect("ip"), 0);
        match probe(&c, &target(addr), TIMEOUT).await {
            Ok(_) => {}
            // Where neither a ping socket nor a raw one is allowed (not
            // root, ping_group_range closed), the reason says what to grant.
            Err(e) if e.reason() == "icmp" => {
                assert!(e.to_string().contains("ping_group_range"), "{e}");
            }
            Err(e) => panic!("{ip}: {e}"),
        }
    }
}

#[test]
fn echo_requests_and_replies() {
    let request = crate::prober::icmp::echo_request(true, 0x1234, 7);
    assert_eq!(&request[..2], [8, 0]);
    assert_eq!(&request[4..8], [0x12, 0x34, 0, 7]);
    // The checksum of a packet with its checksum is 0.
    assert_eq!(crate::prober::icmp::checksum(&request), 0);
    let mut reply = request.clone();
    reply[0] = 0;
    assert!(crate::prober::icmp::is_reply(
        &reply, true, false, 0x1234, 7
    ));
    assert!(!crate::prober::icmp::is_reply(
        &reply, true, false, 0x1234, 8
    ));
    assert!(!crate::prober::icmp::is_reply(
        &request, true, false, 0x1234, 7
    ));
    // On a raw IPv4 socket: behind a 20-byte IP header, and our id only.
    let mut raw = vec![0x45u8];
    raw.extend_from_slice(&[0; 19]);
    raw.extend_from_slice(&reply);
    assert!(crate::prober::icmp::is_reply(&raw, true, true, 0x1234, 7));
    assert!(!crate::prober::icmp::is_reply(&raw, true, true, 0x4321, 7));
    let v6 = crate::prober::icmp::echo_request(false, 1, 2);
    assert_eq!(v6[0], 128);
}
