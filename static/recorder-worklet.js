// AudioWorklet processor: hands the microphone's raw PCM to the page in blocks of 2048
// samples (about 43 ms at 48 kHz) instead of 375 tiny messages a second.
class PcmCapture extends AudioWorkletProcessor {
  constructor() {
    super();
    this.buf = new Float32Array(2048);
    this.n = 0;
    this.port.onmessage = (e) => { if (e.data === 'flush') this.flush(); };
  }

  flush() {
    if (this.n === 0) return;
    const out = this.buf.slice(0, this.n);
    this.port.postMessage(out, [out.buffer]);
    this.n = 0;
  }

  process(inputs) {
    const channel = inputs[0] && inputs[0][0];
    if (channel) {
      for (let i = 0; i < channel.length; i++) {
        this.buf[this.n++] = channel[i];
        if (this.n === this.buf.length) this.flush();
      }
    }
    return true;
  }
}

registerProcessor('pcm-capture', PcmCapture);
