//! Inputs the fuzz targets (`fuzz/`) found to crash or break a property, fed straight
//! to the parser, so each stays fixed without the fuzzer.

use readyloop::proto::http::files::{parse_range, RangeSpec};
use readyloop::proto::http::parser::{BodyDecoder, BodyFraming};

/// `http_range`: a `Range` value whose 7th byte is inside a UTF-8 character
/// (`bytesé=0-1`) panicked slicing a `&str` at a non-boundary; it is not a byte range
/// request, so the whole file is served.
#[test]
fn range_with_a_multibyte_character_at_byte_six() {
    assert_eq!(parse_range(b"bytes\xc3\xa9=0-1", 100), RangeSpec::Full);
    assert_eq!(parse_range("bytesé=0-1".as_bytes(), 100), RangeSpec::Full);
    assert_eq!(parse_range("bytéé=0-1".as_bytes(), 100), RangeSpec::Full);
    assert_eq!(parse_range("é".as_bytes(), 100), RangeSpec::Full);
    assert_eq!(parse_range(b"bytes=0-1", 100), RangeSpec::Single(0, 1));
}

/// `http_body`: `BodyDecoder::total` promised the body bytes decoded so far, but gave
/// the chunk sizes announced (the data not yet there) and 0 for a `Content-Length`
/// body.
#[test]
fn body_decoder_total_counts_decoded_bytes() {
    let mut d = BodyDecoder::new(BodyFraming::Chunked, 100);
    let mut out = Vec::new();
    d.feed(b"5\r\nhe", &mut out).unwrap();
    assert_eq!((d.total(), out.len()), (2, 2));
    d.feed(b"llo\r\n0\r\n\r\n", &mut out).unwrap();
    assert_eq!((d.total(), out.as_slice()), (5, &b"hello"[..]));

    let mut d = BodyDecoder::new(BodyFraming::Length(4), 100);
    let mut out = Vec::new();
    assert_eq!(d.feed(b"abcdEF", &mut out).unwrap(), 4);
    assert_eq!(d.total(), 4);
    assert!(d.is_done());
}

/// `chat_irc`: an IRC line the server sends must fit in 512 bytes with its CRLF, but
/// a 421 (or a PONG, a topic, a quit) echoing client bytes passed it: every invalid
/// byte of the input decodes to a 3-byte U+FFFD, so a 400-byte command became a
/// 1200-byte reply. Lines are now cut to 512 bytes on a character boundary.
#[test]
fn irc_replies_echoing_invalid_utf8_fit_in_512_bytes() {
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;
    use std::rc::Rc;
    use std::time::{Duration, Instant};

    use readyloop::net::{PeerAddr, Stream};
    use readyloop::proto::chat::{ChatConfig, ChatServer};
    use readyloop::reactor::Reactor;
    use readyloop::selector::Backend;

    let cfg = ChatConfig::default();
    let stream_cfg = Rc::new(cfg.listen.stream.clone());
    let chat = ChatServer::new(cfg);
    let mut reactor = Reactor::new(Backend::Poll).unwrap();
    let (server, mut client) = UnixStream::pair().unwrap();
    client.set_nonblocking(true).unwrap();
    let peer = PeerAddr::Inet("127.0.0.1:40000".parse().unwrap());
    let proto = chat.irc_factory()(&peer).unwrap();
    let stream = Stream::new(server.into(), peer, proto, stream_cfg).unwrap();
    reactor.with_ctx(|ctx| stream.register(ctx)).unwrap();

    let mut input = b"NICK alice\r\nUSER a 0 * :A\r\n".to_vec();
    input.extend_from_slice(&[0xff; 400]);
    input.extend_from_slice(b"\r\nPING :");
    input.extend_from_slice(&[0xfe; 400]);
    input.extend_from_slice(b"\r\n");
    client.write_all(&input).unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !String::from_utf8_lossy(&out).contains(" PONG ") {
        assert!(
            Instant::now() < deadline,
            "no PONG: {}",
            String::from_utf8_lossy(&out)
        );
        reactor.run_once(Some(Duration::from_millis(10))).unwrap();
        let mut buf = [0u8; 65536];
        while let Ok(n) = client.read(&mut buf) {
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
    }
    let text = String::from_utf8(out).unwrap();
    let mut seen421 = false;
    for line in text.split_inclusive("\r\n") {
        assert!(line.len() <= 512, "{} bytes: {line:?}", line.len());
        assert!(line.ends_with("\r\n"), "{line:?}");
        seen421 |= line.contains(" 421 ");
    }
    assert!(seen421, "{text}");
}
