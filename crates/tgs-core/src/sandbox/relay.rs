//! Bytes between two streams, both ways: the sandbox's bridge (the agent's
//! loopback to tgs's proxy socket) and the proxy's tunnels (its socket to
//! the host) are both this. In the kernel where it can (`splice` through a
//! pipe), else through a large buffer: a download through the two hops
//! costs little more than the download itself.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

/// The buffer each direction copies through.
const BUF: usize = 256 * 1024;

/// A stream that can be split for the other direction and half-closed.
pub trait Duplex: Read + Write + Send + Sized + 'static {
    fn split(&self) -> io::Result<Self>;
    fn close_write(&self);
}

impl Duplex for TcpStream {
    fn split(&self) -> io::Result<Self> {
        self.try_clone()
    }
    fn close_write(&self) {
        let _ = self.shutdown(Shutdown::Write);
    }
}

impl Duplex for UnixStream {
    fn split(&self) -> io::Result<Self> {
        self.try_clone()
    }
    fn close_write(&self) {
        let _ = self.shutdown(Shutdown::Write);
    }
}

/// Copy `a` to `b` and `b` to `a` until both sides are done, each
/// direction's end passed on as a half-close.
pub fn both_ways<A: Duplex + AsRawFd, B: Duplex + AsRawFd>(a: A, b: B) {
    let (Ok(mut a_read), Ok(mut b_write)) = (a.split(), b.split()) else {
        return;
    };
    let there = std::thread::spawn(move || {
        let _ = pass(&mut a_read, &mut b_write);
        b_write.close_write();
    });
    let (mut b_read, mut a_write) = (b, a);
    let _ = pass(&mut b_read, &mut a_write);
    a_write.close_write();
    let _ = there.join();
}

/// `from` to `to` in the kernel (`splice` through a pipe: the bytes are
/// never copied into tgs), or through [`copy`] where splicing is not
/// possible.
fn pass<R: Read + AsRawFd, W: Write + AsRawFd>(from: &mut R, to: &mut W) -> io::Result<u64> {
    match Pipe::new() {
        Some(pipe) => match pipe.splice_all(from.as_raw_fd(), to.as_raw_fd()) {
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => copy(from, to),
            done => done,
        },
        None => copy(from, to),
    }
}

/// A pipe to splice through, closed when dropped.
struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
}

impl Pipe {
    fn new() -> Option<Pipe> {
        let mut fds = [0i32; 2];
        // SAFETY: pipe2 writes two fds into the array it is given.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return None;
        }
        // SAFETY: both fds were just created for us alone.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // A bigger pipe: fewer trips (best effort; the default is 64 KiB).
        // SAFETY: fcntl on an fd we own.
        unsafe { libc::fcntl(write.as_raw_fd(), libc::F_SETPIPE_SZ, BUF as libc::c_int) };
        Some(Pipe { read, write })
    }

    /// Splice `from` into the pipe and the pipe into `to` until `from` ends.
    fn splice_all(&self, from: RawFd, to: RawFd) -> io::Result<u64> {
        let mut total = 0u64;
        loop {
            let n = splice(from, self.write.as_raw_fd(), BUF)?;
            if n == 0 {
                return Ok(total);
            }
            let mut left = n;
            while left > 0 {
                match splice(self.read.as_raw_fd(), to, left)? {
                    0 => return Err(io::ErrorKind::WriteZero.into()),
                    m => left -= m,
                }
            }
            total += n as u64;
        }
    }
}

/// One `splice(2)` of at most `len` bytes, retried when interrupted.
fn splice(from: RawFd, to: RawFd, len: usize) -> io::Result<usize> {
    loop {
        // SAFETY: two fds we hold and no offsets (sockets and pipes).
        let n = unsafe {
            libc::splice(
                from,
                std::ptr::null_mut(),
                to,
                std::ptr::null_mut(),
                len,
                libc::SPLICE_F_MOVE,
            )
        };
        match usize::try_from(n) {
            Ok(n) => return Ok(n),
            Err(_) => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }
}

/// Copy `from` to `to` through one [`BUF`]-byte buffer; the bytes copied.
pub fn copy(from: &mut impl Read, to: &mut impl Write) -> io::Result<u64> {
    let mut buf = vec![0u8; BUF];
    let mut total = 0u64;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        to.write_all(&buf[..n])?;
        total += n as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// Both directions arrive whole, and each end's close reaches the other.
    #[test]
    fn both_ways_carries_everything_and_the_ends() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let (unix_ours, unix_theirs) = UnixStream::pair().unwrap();
        let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let sent = big.clone();
        let far = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            s.write_all(&sent).unwrap();
            s.shutdown(Shutdown::Write).unwrap();
            let mut back = Vec::new();
            s.read_to_end(&mut back).unwrap();
            back
        });
        let tcp = TcpStream::connect(addr).unwrap();
        let relay = std::thread::spawn(move || both_ways(unix_theirs, tcp));
        let mut ours = unix_ours;
        ours.write_all(b"hello").unwrap();
        ours.shutdown(Shutdown::Write).unwrap();
        let mut got = Vec::new();
        ours.read_to_end(&mut got).unwrap();
        assert_eq!(got, big);
        assert_eq!(far.join().unwrap(), b"hello");
        relay.join().unwrap();
    }
}
