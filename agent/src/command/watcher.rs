//! The watcher: a small process that stops a running command's whole
//! process group if the agent dies, so a killed agent leaves no orphan.
//! `PR_SET_PDEATHSIG` would reach only the command itself, never the
//! children of a shell.
//!
//! The watcher is forked from the agent (no exec: a fork is all it costs)
//! before a command is spawned, and watches one command at a time: the
//! agent keeps an idle one for the next command of the run (a fork per
//! command cost a no-op converge 0.65 ms and 150 page faults for each
//! guard; bench/README.md). It holds the read end of a pipe whose write end
//! only the agent holds (close-on-exec, so the command does not inherit
//! it). Each command, between its fork and its exec, writes its pid into
//! the pipe, so the watcher learns it even if the agent dies at that very
//! moment. When the command has ended the agent writes one more byte and
//! the watcher waits for the next pid; end-of-file instead of that byte
//! means the agent died: the watcher sends SIGTERM to the group, SIGKILL
//! [`KILL_GRACE`] later to what is left, and exits once the group is gone.
//! End-of-file while no command runs (the run is over, or the agent exited)
//! ends the watcher quietly.
//!
//! It also keeps a duplicate of the run lock (when the run shared it, see
//! `lock::RunLock::shared_with_commands`), so the next run waits until the
//! killed run's commands are gone instead of overlapping them. Everything
//! else inherited from the agent is closed at once: the daemon lock, other
//! commands' pipes, sockets.
//!
//! After the fork the child may only make async-signal-safe calls (the agent
//! has other threads, whose locks the child inherits held), so its code is
//! plain libc calls: no allocation, no panics, no std I/O.

// Forked without exec and calling libc directly: listed in
// docs/decisions.md, "Where `unsafe` is allowed".
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::Duration;

use nix::libc;

/// How long the command's group has to end on SIGTERM before SIGKILL.
pub const KILL_GRACE: Duration = Duration::from_secs(5);
/// How long after SIGKILL the watcher waits for the group to be gone (a
/// zombie nobody reaps still counts as a member) before it exits anyway.
const GONE_WAIT: Duration = Duration::from_secs(5);
/// How often the watcher looks whether the group is gone.
const POLL: Duration = Duration::from_millis(50);
/// What the agent writes when the command ended normally.
const DONE: u8 = b'.';
/// Where the watcher keeps the pipe and the run lock after closing the rest.
const PIPE_FD: RawFd = 3;
const LOCK_FD: RawFd = 4;

/// A running watcher, owned by the agent: by one command while it runs,
/// idle between commands.
pub(super) struct Watcher {
    pid: libc::pid_t,
    /// The write end; only the agent holds it.
    pipe: Option<OwnedFd>,
    /// The run lock's generation it keeps (`lock::shared`).
    pub(super) generation: u64,
    /// Already reaped: its pid is not waited for again.
    reaped: bool,
}

impl Watcher {
    /// Fork a watcher that keeps `run_lock` (a descriptor of the agent's
    /// run lock, of `generation`) open while it lives.
    pub(super) fn start(run_lock: Option<RawFd>, generation: u64) -> io::Result<Watcher> {
        let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        let read_fd = read.as_raw_fd();
        // SAFETY: the child runs only `watch`, which makes async-signal-safe
        // calls and never returns; the parent continues as usual.
        match unsafe { libc::fork() } {
            -1 => Err(io::Error::last_os_error()),
            0 => unsafe { watch(read_fd, run_lock.unwrap_or(-1)) },
            pid => {
                drop(read);
                Ok(Watcher {
                    pid,
                    pipe: Some(write),
                    generation,
                    reaped: false,
                })
            }
        }
    }

    /// The descriptor the command writes its pid to, between fork and exec
    /// (see [`announce`]).
    pub(super) fn pipe_fd(&self) -> RawFd {
        self.pipe.as_ref().map_or(-1, AsRawFd::as_raw_fd)
    }

    #[cfg(test)]
    pub(super) fn pid(&self) -> libc::pid_t {
        self.pid
    }

    /// Still running (one killed by hand or by the OOM killer while idle
    /// must not be handed the next command).
    pub(super) fn alive(&mut self) -> bool {
        let mut status = 0;
        // SAFETY: a non-blocking wait for our own child, by pid.
        let alive = unsafe { libc::waitpid(self.pid, &mut status, libc::WNOHANG) } == 0;
        // Reaped (or not ours to wait for): never waited for again, since
        // its pid may already be another child's.
        self.reaped |= !alive;
        alive
    }

    /// The command it watched ended (or never started): it stops watching
    /// that group and waits for the next pid. False when the pipe is broken
    /// (the watcher is gone): the agent must not use it again.
    pub(super) fn command_done(&self) -> bool {
        let Some(pipe) = &self.pipe else { return false };
        let done = DONE;
        // SAFETY: writing one byte from a live local to an owned descriptor.
        unsafe { libc::write(pipe.as_raw_fd(), (&raw const done).cast(), 1) == 1 }
    }
}

/// Called in the command's process after fork, before exec: join a new
/// process group (the one the watcher stops) and tell the watcher its pid.
///
/// # Safety
/// Only between fork and exec: it makes async-signal-safe calls only.
pub(super) unsafe fn announce(pipe: RawFd) {
    // SAFETY: setpgid, getpid, signal and write are async-signal-safe.
    unsafe {
        libc::setpgid(0, 0);
        let pid: libc::pid_t = libc::getpid();
        // A watcher killed by hand must not kill the command with SIGPIPE.
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        libc::write(
            pipe,
            (&raw const pid).cast::<libc::c_void>(),
            size_of::<libc::pid_t>(),
        );
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

impl Drop for Watcher {
    /// Retired: end-of-file ends an idle watcher without touching anything,
    /// and it is reaped. Dropped with its command still running (a panic
    /// mid-command), it takes that as the agent's death and stops the
    /// command's group first.
    fn drop(&mut self) {
        drop(self.pipe.take());
        if self.reaped {
            return;
        }
        let mut status = 0;
        // SAFETY: waiting for our own child, by pid.
        while unsafe { libc::waitpid(self.pid, &mut status, 0) } == -1
            && io::Error::last_os_error().raw_os_error() == Some(libc::EINTR)
        {}
    }
}

/// The watcher's whole life, in the forked child.
///
/// # Safety
/// Only in the child of `fork`: async-signal-safe calls only, never returns.
unsafe fn watch(pipe: RawFd, run_lock: RawFd) -> ! {
    // SAFETY: every call below is async-signal-safe (POSIX.1-2008 list, plus
    // the close_range system call) and touches only this process.
    unsafe {
        // Its own session: a signal to the agent's process group (Ctrl-C, a
        // supervisor killing the group) does not take the watcher with it.
        libc::setsid();
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT] {
            libc::signal(sig, libc::SIG_IGN);
        }
        if !keep_only(pipe, run_lock) {
            // Out of descriptors: it cannot watch, and must not read a stranger.
            libc::_exit(0);
        }
        loop {
            let mut pid: libc::pid_t = 0;
            let want = size_of::<libc::pid_t>();
            if read_full(PIPE_FD, (&raw mut pid).cast(), want) != want || pid <= 1 {
                // Retired, or the agent exited or died between commands (a
                // lone DONE byte: a command that never started).
                libc::_exit(0);
            }
            let mut byte = 0u8;
            match read_full(PIPE_FD, (&raw mut byte).cast(), 1) {
                1 if byte == DONE => continue,
                // Not what the agent writes: touch nothing.
                1 => libc::_exit(0),
                // End of file without the byte: the agent died with the command running.
                _ => {
                    stop_group(pid);
                    libc::_exit(0)
                }
            }
        }
    }
}

/// Move `pipe` to [`PIPE_FD`] and `run_lock` (if any) to [`LOCK_FD`], point
/// 0-2 at /dev/null and close everything else. False if the pipe could not
/// be moved.
unsafe fn keep_only(pipe: RawFd, run_lock: RawFd) -> bool {
    // SAFETY: fcntl, dup2, open, close and syscall are async-signal-safe.
    unsafe {
        // Out of the way first, so moving one cannot overwrite the other.
        let pipe_high = libc::fcntl(pipe, libc::F_DUPFD, 100);
        let lock_high = if run_lock >= 0 {
            libc::fcntl(run_lock, libc::F_DUPFD, 100)
        } else {
            -1
        };
        if pipe_high < 0 || libc::dup2(pipe_high, PIPE_FD) != PIPE_FD {
            return false;
        }
        if lock_high >= 0 {
            libc::dup2(lock_high, LOCK_FD);
        } else {
            libc::close(LOCK_FD);
        }
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        if null >= 0 {
            for fd in 0..3 {
                libc::dup2(null, fd);
            }
        }
        let first = (LOCK_FD + 1) as libc::c_uint;
        if libc::syscall(libc::SYS_close_range, first, libc::c_uint::MAX, 0) != 0 {
            // Kernels before 5.9: close what any sane limit allows.
            for fd in first as RawFd..65536 {
                libc::close(fd);
            }
        }
    }
    true
}

/// Read up to `len` bytes, retrying interrupted and short reads; the count read.
unsafe fn read_full(fd: RawFd, buf: *mut libc::c_void, len: usize) -> usize {
    let mut got = 0;
    while got < len {
        // SAFETY: `buf` has `len` bytes; read is async-signal-safe.
        let n = unsafe { libc::read(fd, buf.cast::<u8>().add(got).cast(), len - got) };
        if n > 0 {
            got += n as usize;
        } else if n == 0 || nix::errno::Errno::last_raw() != libc::EINTR {
            break;
        }
    }
    got
}

/// SIGTERM to the group, SIGKILL to what is left after [`KILL_GRACE`], then
/// wait (bounded) for the group to be gone.
unsafe fn stop_group(pgid: libc::pid_t) {
    // SAFETY: killpg and nanosleep are async-signal-safe.
    unsafe {
        if libc::killpg(pgid, libc::SIGTERM) != 0 {
            return;
        }
        if wait_gone(pgid, KILL_GRACE) {
            return;
        }
        libc::killpg(pgid, libc::SIGKILL);
        wait_gone(pgid, GONE_WAIT);
    }
}

/// True once no process is left in the group, false after `limit`.
unsafe fn wait_gone(pgid: libc::pid_t, limit: Duration) -> bool {
    let pause = libc::timespec {
        tv_sec: 0,
        tv_nsec: POLL.as_nanos() as libc::c_long,
    };
    let rounds = (limit.as_millis() / POLL.as_millis()) as u32;
    for _ in 0..rounds {
        // SAFETY: async-signal-safe calls on plain values.
        unsafe {
            if libc::killpg(pgid, 0) != 0 {
                return true;
            }
            libc::nanosleep(&pause, std::ptr::null_mut());
        }
    }
    // SAFETY: as above.
    unsafe { libc::killpg(pgid, 0) != 0 }
}
