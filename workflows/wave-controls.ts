import { condition, setHandler } from '@temporalio/workflow';
import { waveControlSignal, type WaveControl } from './messages';

/**
 * A wave child's side of the operator controls: the deployment relays its pause, abort (halt) and
 * skips here (waveControlSignal, the whole state each time); the pool asks before starting each host.
 */
export class WaveControls {
  private state: WaveControl;

  constructor(initial: WaveControl | undefined) {
    this.state = initial ?? { paused: false, halted: false, skipped: [] };
    setHandler(waveControlSignal, (s) => {
      // A malformed relay (only the deployment sends it) changes nothing rather than wedging the wave.
      if (typeof s !== 'object' || s === null || !Array.isArray(s.skipped)) return;
      this.state = { paused: s.paused === true, halted: s.halted === true, skipped: s.skipped.filter((h): h is string => typeof h === 'string') };
    });
  }

  get halted(): boolean {
    return this.state.halted;
  }

  /**
   * `deploy` for `host` once the wave is not paused, unless the host was skipped or the wave must stop
   * meanwhile (`stop`: the budget is spent, or the deployment is halting). No wait when not paused.
   */
  async run(host: string, stop: () => boolean, deploy: () => Promise<void>): Promise<void> {
    if (this.state.paused && !this.state.halted) await condition(() => !this.state.paused || this.state.halted);
    if (this.state.halted || stop() || this.state.skipped.includes(host)) return;
    await deploy();
  }
}
