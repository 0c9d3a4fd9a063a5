//! The Unix socket that publishes level changes: one JSON line per change to
//! every subscriber; a `query` line gets the current state back.
//!
//! Nothing here blocks: a subscriber that does not keep up (its socket buffer
//! is full) or sends garbage is dropped. Subscribers are limited in all and per
//! user (root excepted), so one user's idle connections cannot lock others out.

use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

pub use memnotifyd::config::ClientLimits;

/// A request line longer than this closes the connection.
const REQUEST_MAX: usize = 64;

struct Client {
    stream: UnixStream,
    /// The peer's user (SO_PEERCRED at accept time).
    uid: u32,
    request: [u8; REQUEST_MAX],
    len: usize,
}

/// What a client asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// `query`: send the current state.
    Query,
    /// Anything else.
    Unknown,
}

/// Parses one request line.
pub fn parse_request(line: &[u8]) -> Request {
    match line.trim_ascii() {
        b"query" => Request::Query,
        _ => Request::Unknown,
    }
}

/// The answer to an unknown request.
pub const UNKNOWN_REQUEST: &[u8] = b"{\"error\":\"unknown request: send query\"}\n";

/// The answer to a connection over a limit, sent (if it fits) before hanging up.
pub const TOO_MANY: &[u8] = b"{\"error\":\"too many connections\"}\n";

/// The listening socket and its subscribers.
pub struct Publisher {
    listener: UnixListener,
    path: PathBuf,
    mode: u32,
    clients: Vec<Client>,
    limits: ClientLimits,
}

impl Publisher {
    /// Creates the socket at `path` with `mode`, replacing a stale one left by a crash.
    pub fn bind(path: &Path, mode: u32, limits: ClientLimits) -> std::io::Result<Publisher> {
        if let Ok(metadata) = std::fs::symlink_metadata(path) {
            if !metadata.file_type().is_socket() {
                return Err(std::io::Error::new(
                    ErrorKind::AlreadyExists,
                    format!("{} exists and is not a socket", path.display()),
                ));
            }
            if UnixStream::connect(path).is_ok() {
                return Err(std::io::Error::new(
                    ErrorKind::AddrInUse,
                    format!(
                        "{} is in use: is another memnotifyd running?",
                        path.display()
                    ),
                ));
            }
            std::fs::remove_file(path)?;
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        // Created owner-only, then opened up to `mode`: never more open than asked.
        let old = rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o177));
        let listener = UnixListener::bind(path);
        rustix::process::umask(old);
        let listener = listener?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
        listener.set_nonblocking(true)?;
        Ok(Publisher {
            listener,
            path: path.to_path_buf(),
            mode,
            clients: Vec::with_capacity(limits.max),
            limits,
        })
    }

    /// Where the socket is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Its mode.
    pub fn mode(&self) -> u32 {
        self.mode
    }

    /// How many subscribers are connected.
    #[cfg(test)]
    pub fn clients(&self) -> usize {
        self.clients.len()
    }

    /// The descriptors to poll for reading: the listener, then each client.
    pub fn fds(&self) -> impl Iterator<Item = RawFd> + '_ {
        std::iter::once(self.listener.as_raw_fd())
            .chain(self.clients.iter().map(|client| client.stream.as_raw_fd()))
    }

    /// Accepts waiting connections; those over a limit get an error line and are closed.
    pub fn accept(&mut self) {
        while let Ok((stream, _)) = self.listener.accept() {
            if stream.set_nonblocking(true).is_err() {
                continue;
            }
            // Without credentials the peer counts as an ordinary user.
            let uid = rustix::net::sockopt::socket_peercred(&stream)
                .map_or(u32::MAX, |cred| cred.uid.as_raw());
            let same_uid = self
                .clients
                .iter()
                .filter(|client| client.uid == uid)
                .count();
            if !self.limits.admits(uid, same_uid, self.clients.len()) {
                let _ = (&stream).write(TOO_MANY);
                continue;
            }
            self.clients.push(Client {
                stream,
                uid,
                request: [0; REQUEST_MAX],
                len: 0,
            });
        }
    }

    /// Changes the limits for later connections.
    pub fn set_limits(&mut self, limits: ClientLimits) {
        self.limits = limits;
    }

    /// Sends `line` to every subscriber, dropping those that cannot take it whole.
    pub fn broadcast(&mut self, line: &[u8]) {
        self.clients.retain_mut(
            |client| matches!(client.stream.write(line), Ok(written) if written == line.len()),
        );
    }

    /// Reads requests from every client; `answer` formats the state for `query`.
    pub fn serve(&mut self, mut answer: impl FnMut(&mut [u8]) -> usize) {
        let mut reply = [0u8; crate::json::JSON_BUF];
        self.clients.retain_mut(|client| loop {
            let room = &mut client.request[client.len..];
            if room.is_empty() {
                return false;
            }
            match client.stream.read(room) {
                Ok(0) => return false,
                Ok(read) => client.len += read,
                Err(error) if error.kind() == ErrorKind::WouldBlock => return true,
                Err(error) if error.kind() == ErrorKind::Interrupted => continue,
                Err(_) => return false,
            }
            while let Some(end) = client.request[..client.len]
                .iter()
                .position(|&byte| byte == b'\n')
            {
                let sent = match parse_request(&client.request[..end]) {
                    Request::Query => {
                        let len = answer(&mut reply);
                        client.stream.write(&reply[..len]).ok() == Some(len)
                    }
                    Request::Unknown => {
                        client.stream.write(UNKNOWN_REQUEST).ok() == Some(UNKNOWN_REQUEST.len())
                    }
                };
                if !sent {
                    return false;
                }
                client.request.copy_within(end + 1..client.len, 0);
                client.len -= end + 1;
            }
        });
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader};
    use std::os::unix::fs::PermissionsExt;

    fn limits(max: usize) -> ClientLimits {
        ClientLimits { max, per_uid: max }
    }

    #[test]
    fn limits_apply_in_all_and_per_user_but_root() {
        let limits = ClientLimits { max: 4, per_uid: 2 };
        assert!(limits.admits(1000, 1, 3));
        assert!(!limits.admits(1000, 2, 2), "user 1000 has its share");
        assert!(limits.admits(1001, 0, 2), "others still get in");
        assert!(limits.admits(0, 3, 3), "root is not limited per user");
        assert!(!limits.admits(0, 4, 4), "nor is anybody over the total");
    }

    fn path(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("mnd-{name}-{}.sock", std::process::id()))
    }

    #[test]
    fn requests() {
        assert_eq!(parse_request(b"query"), Request::Query);
        assert_eq!(parse_request(b" query\r"), Request::Query);
        assert_eq!(parse_request(b"quer"), Request::Unknown);
    }

    #[test]
    fn publishes_and_answers_queries() {
        let path = path("pub");
        let mut publisher = Publisher::bind(&path, 0o600, limits(2)).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let first = UnixStream::connect(&path).unwrap();
        let second = UnixStream::connect(&path).unwrap();
        let third = UnixStream::connect(&path).unwrap();
        publisher.accept();
        assert_eq!(publisher.clients(), 2, "the third is over the maximum");
        let mut refusal = String::new();
        BufReader::new(&third).read_line(&mut refusal).unwrap();
        assert_eq!(refusal.as_bytes(), TOO_MANY);
        drop(third);
        publisher.broadcast(b"{\"event\":\"change\"}\n");
        let mut reader = BufReader::new(first.try_clone().unwrap());
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        assert_eq!(line, "{\"event\":\"change\"}\n");
        (&first).write_all(b"query\nbogus\n").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(50));
        publisher.serve(|buf| {
            buf[..7].copy_from_slice(b"state!\n");
            7
        });
        line.clear();
        reader.read_line(&mut line).unwrap();
        assert_eq!(line, "state!\n");
        line.clear();
        reader.read_line(&mut line).unwrap();
        assert_eq!(line.as_bytes(), UNKNOWN_REQUEST);
        drop(second);
        drop(reader);
        drop(first);
        publisher.serve(|_| 0);
        assert_eq!(publisher.clients(), 0, "closed clients are dropped");
        drop(publisher);
        assert!(!path.exists(), "the socket is removed on exit");
    }

    #[test]
    fn stale_sockets_are_replaced_and_live_ones_kept() {
        let path = path("stale");
        let first = Publisher::bind(&path, 0o660, limits(1)).unwrap();
        assert!(Publisher::bind(&path, 0o660, limits(1)).is_err(), "in use");
        drop(first);
        // A crash: the socket file stays, nobody listens.
        drop(UnixListener::bind(&path).unwrap());
        assert!(path.exists());
        let second = Publisher::bind(&path, 0o660, limits(1)).expect("stale socket replaced");
        drop(second);
        std::fs::write(&path, "not a socket").unwrap();
        assert!(Publisher::bind(&path, 0o660, limits(1)).is_err());
        std::fs::remove_file(&path).unwrap();
    }
}
