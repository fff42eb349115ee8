//! The gRPC codec every generated client and server uses: prost's, with
//! 1 KiB starting buffers instead of tonic's 8 KiB. A server keeps one
//! encode buffer for each open response stream and an agent one decode
//! buffer for its Watch stream: with one idle stream per node, 8 KiB of
//! them was a fifth of what an idle agent cost the server (bench/README.md,
//! "cm-bench idle"). A larger message grows its buffer as before.

use std::marker::PhantomData;

use prost::Message;
use tonic::codec::BufferSettings;
use tonic_prost::{ProstDecoder, ProstEncoder};

/// Where a buffer starts; it grows for a larger message.
const BUFFER_BYTES: usize = 1024;
/// tonic's own: how much a stream encodes before it yields to the runtime.
const YIELD_THRESHOLD: usize = 32 * 1024;

/// [`tonic_prost::ProstCodec`] with small buffers.
#[derive(Debug, Clone)]
pub struct Codec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for Codec<T, U> {
    fn default() -> Self {
        Codec(PhantomData)
    }
}

fn settings() -> BufferSettings {
    BufferSettings::new(BUFFER_BYTES, YIELD_THRESHOLD)
}

impl<T, U> tonic::codec::Codec for Codec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = ProstDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::new(settings())
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstDecoder::new(settings())
    }
}
