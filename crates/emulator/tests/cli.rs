//! `siuo-emulator` as a process, as the docs start it: it prints where it
//! listens and answers the OpenAI API there.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::process::{Command, Stdio};

#[test]
fn the_emulator_process_prints_its_address_and_answers_there() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_siuo-emulator"))
        .args([
            "--port",
            "0",
            "--latency-ms",
            "20",
            "--latency-shape",
            "heavy-tailed",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start siuo-emulator");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).expect("a line");
    let url = line
        .trim()
        .strip_prefix("siuo-emulator listening on ")
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_owned();
    let address = url
        .trim_start_matches("http://")
        .trim_end_matches("/v1")
        .to_owned();
    assert!(address.starts_with("127.0.0.1:"), "{url}");
    let mut stream = TcpStream::connect(&address).expect("connect");
    write!(
        stream,
        "GET /v1/models HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read");
    child.kill().expect("stop");
    let _ = child.wait();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("emulated-vision"), "{answer}");
}
