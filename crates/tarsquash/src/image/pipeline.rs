//! The data path: a pool of compressor threads and one ordered writer.
//!
//! The caller numbers every [`Job`] in submission order and sends it through a bounded queue;
//! any compressor thread takes it (each owns one zstd context), and the writer thread puts the
//! results back in order before touching the image. Every decision (what is sparse, which
//! bytes form a fragment, which file is a duplicate) is made by the caller, so the image does
//! not depend on the number of threads or on which finished first.
//!
//! Shutdown: dropping the job sender lets the compressor threads drain and exit, which closes
//! the result channel and ends the writer. If the writer fails it stops receiving; the
//! compressor threads then fail to send and exit, and the caller's next submission fails and
//! collects the writer's error. [`Pipeline`]'s `Drop` joins every thread.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};

use super::compressor::{BlockCompressor, StoredBlock};
use super::ImageError;

/// Jobs in the queue per compressor thread (with as many results waiting, this bounds the
/// blocks in memory to a few per thread).
const QUEUE_DEPTH_PER_THREAD: usize = 8;
/// Output buffer of the writer thread.
const WRITE_BUFFER: usize = 256 * 1024;

/// One step of the data stream, in image order.
#[derive(Debug)]
pub(crate) enum Job {
    /// A full block of the file being added; `first` opens the file's block list.
    FileBlock { first: bool, data: Vec<u8> },
    /// An all-zero full block of the file being added: listed with size 0, not stored.
    SparseBlock { first: bool },
    /// Forget the block list of the file being added and the bytes it wrote (the file turned
    /// out to duplicate an earlier one, or its input failed).
    DropFile,
    /// A full fragment block.
    Fragment { data: Vec<u8> },
}

/// A job after the compressor threads.
enum Done {
    FileBlock { first: bool, block: StoredBlock },
    SparseBlock { first: bool },
    DropFile,
    Fragment { block: StoredBlock },
}

/// The blocks of one file: where the first one starts and where its size words begin.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BlockList {
    pub start: u64,
    pub first_word: usize,
}

/// Everything the data path wrote, for the tables.
pub(crate) struct DataLayout {
    pub out: File,
    /// End of the data (the next table goes here).
    pub end: u64,
    pub block_lists: Vec<BlockList>,
    /// Size words of all block lists, in order.
    pub words: Vec<u32>,
    /// (start, size word) of each fragment block.
    pub fragments: Vec<(u64, u32)>,
}

pub(crate) struct Pipeline {
    jobs: Option<Sender<(u64, Job)>>,
    next_seq: u64,
    compressors: Vec<JoinHandle<()>>,
    writer: Option<JoinHandle<Result<DataLayout, ImageError>>>,
}

impl Pipeline {
    /// Starts `threads` compressor threads and the writer, which appends to `out` from `start`.
    pub(crate) fn start(
        out: File,
        start: u64,
        threads: usize,
        level: i32,
    ) -> Result<Pipeline, ImageError> {
        let depth = threads * QUEUE_DEPTH_PER_THREAD;
        let (job_sender, job_receiver) = crossbeam_channel::bounded(depth);
        let (done_sender, done_receiver) = crossbeam_channel::bounded(depth);
        let writer = std::thread::Builder::new()
            .name("tarsquash-writer".into())
            .spawn(move || write_in_order(out, start, done_receiver))
            .map_err(|source| ImageError::Spawn { source })?;
        let mut pipeline = Pipeline {
            jobs: Some(job_sender),
            next_seq: 0,
            compressors: Vec::with_capacity(threads),
            writer: Some(writer),
        };
        let spawned = (0..threads).try_for_each(|i| {
            let mut compressor = BlockCompressor::new(level)?;
            let jobs = job_receiver.clone();
            let done = done_sender.clone();
            let handle = std::thread::Builder::new()
                .name(format!("tarsquash-zstd-{i}"))
                .spawn(move || compress_jobs(&mut compressor, jobs, done))
                .map_err(|source| ImageError::Spawn { source })?;
            pipeline.compressors.push(handle);
            Ok(())
        });
        // Only the threads may hold these ends, or a failure on one side would go unnoticed.
        drop((job_receiver, done_sender));
        spawned?;
        Ok(pipeline)
    }

    /// Queues the next job, waiting while the queue is full.
    pub(crate) fn submit(&mut self, job: Job) -> Result<(), ImageError> {
        let Some(jobs) = &self.jobs else {
            return Err(ImageError::Stopped);
        };
        if jobs.send((self.next_seq, job)).is_ok() {
            self.next_seq += 1;
            return Ok(());
        }
        // Every compressor thread is gone: the writer failed (or a thread died).
        match self.shut_down() {
            Err(error) => Err(error),
            Ok(_) => Err(ImageError::ThreadPanicked),
        }
    }

    /// Waits for all queued jobs to be written and returns what was written.
    pub(crate) fn finish(mut self) -> Result<DataLayout, ImageError> {
        self.shut_down()
    }

    fn shut_down(&mut self) -> Result<DataLayout, ImageError> {
        self.jobs = None;
        let mut panicked = false;
        for handle in self.compressors.drain(..) {
            panicked |= handle.join().is_err();
        }
        let writer = self.writer.take().ok_or(ImageError::Stopped)?;
        let layout = writer.join().map_err(|_| ImageError::ThreadPanicked)??;
        if panicked {
            return Err(ImageError::ThreadPanicked);
        }
        Ok(layout)
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        // Abandoned (an error, or the caller gave up): stop the threads and wait for them.
        if self.writer.is_some() {
            let _ = self.shut_down();
        }
    }
}

fn compress_jobs(
    compressor: &mut BlockCompressor,
    jobs: Receiver<(u64, Job)>,
    done: Sender<(u64, Result<Done, ImageError>)>,
) {
    for (seq, job) in jobs {
        let result = match job {
            Job::FileBlock { first, data } => compressor
                .compress(data)
                .map(|block| Done::FileBlock { first, block }),
            Job::SparseBlock { first } => Ok(Done::SparseBlock { first }),
            Job::DropFile => Ok(Done::DropFile),
            Job::Fragment { data } => compressor
                .compress(data)
                .map(|block| Done::Fragment { block }),
        };
        let failed = result.is_err();
        if done.send((seq, result)).is_err() || failed {
            return;
        }
    }
}

/// The writer thread: applies results in sequence order.
fn write_in_order(
    out: File,
    start: u64,
    done: Receiver<(u64, Result<Done, ImageError>)>,
) -> Result<DataLayout, ImageError> {
    let mut image = DataWriter {
        out: BufWriter::with_capacity(WRITE_BUFFER, out),
        position: start,
        block_lists: Vec::new(),
        words: Vec::new(),
        fragments: Vec::new(),
    };
    // Results that arrived before their predecessors; at most the jobs in flight.
    let mut waiting = BTreeMap::new();
    let mut next_seq = 0u64;
    for (seq, result) in done {
        waiting.insert(seq, result?);
        while let Some(step) = waiting.remove(&next_seq) {
            image.apply(step)?;
            next_seq += 1;
        }
    }
    image.finish()
}

struct DataWriter {
    out: BufWriter<File>,
    position: u64,
    block_lists: Vec<BlockList>,
    words: Vec<u32>,
    fragments: Vec<(u64, u32)>,
}

impl DataWriter {
    fn apply(&mut self, step: Done) -> Result<(), ImageError> {
        match step {
            Done::FileBlock { first, block } => {
                self.open_list(first);
                self.words.push(block.size_word());
                self.write(block.bytes())
            }
            Done::SparseBlock { first } => {
                self.open_list(first);
                self.words.push(0);
                Ok(())
            }
            Done::DropFile => {
                let Some(list) = self.block_lists.pop() else {
                    return Ok(());
                };
                self.words.truncate(list.first_word);
                self.out
                    .seek(SeekFrom::Start(list.start))
                    .map_err(|source| ImageError::Write {
                        what: "file data",
                        source,
                    })?;
                self.position = list.start;
                Ok(())
            }
            Done::Fragment { block } => {
                self.fragments.push((self.position, block.size_word()));
                self.write(block.bytes())
            }
        }
    }

    fn open_list(&mut self, first: bool) {
        if first {
            self.block_lists.push(BlockList {
                start: self.position,
                first_word: self.words.len(),
            });
        }
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), ImageError> {
        self.out
            .write_all(bytes)
            .map_err(|source| ImageError::Write {
                what: "file data",
                source,
            })?;
        self.position += bytes.len() as u64;
        Ok(())
    }

    fn finish(self) -> Result<DataLayout, ImageError> {
        let out = self.out.into_inner().map_err(|error| ImageError::Write {
            what: "file data",
            source: error.into_error(),
        })?;
        Ok(DataLayout {
            out,
            end: self.position,
            block_lists: self.block_lists,
            words: self.words,
            fragments: self.fragments,
        })
    }
}
