/**
 * The figures of the fault, property and security suites. Each test file records what it did (runs,
 * faults injected, invariants checked and held, inputs tried) into one JSON file per test file under
 * $NIXFLEET_FIGURES_DIR (default .nixfleet/fault-figures in this checkout: two checkouts on one machine
 * never mix their figures); `npx tsx tests/faults/report.ts` renders the last run of every file into
 * docs/fault-report.md.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';

export interface Figures {
  suite: string;
  /** Deployments (or sessions) run end to end. */
  runs: number;
  faultsInjected: number;
  invariantsChecked: number;
  invariantsHeld: number;
  inputsTried: number;
  /** One line per scenario: what was done and what held. */
  notes: string[];
}

export function figuresDir(): string {
  return process.env.NIXFLEET_FIGURES_DIR ?? join(__dirname, '..', '..', '.nixfleet', 'fault-figures');
}

/** A recorder for one test file; `save()` (in afterAll) writes its figures. */
export function recorder(testFile: string): {
  figures: Figures;
  run(n?: number): void;
  fault(n?: number): void;
  inputs(n: number): void;
  /** Checks an invariant and counts it; throws (failing the test) when it does not hold. */
  check(what: string, ok: boolean, detail?: unknown): void;
  note(line: string): void;
  save(): void;
} {
  const suite = basename(testFile).replace(/\.test\.ts$/, '');
  const figures: Figures = { suite, runs: 0, faultsInjected: 0, invariantsChecked: 0, invariantsHeld: 0, inputsTried: 0, notes: [] };
  return {
    figures,
    run: (n = 1) => void (figures.runs += n),
    fault: (n = 1) => void (figures.faultsInjected += n),
    inputs: (n) => void (figures.inputsTried += n),
    check(what, ok, detail) {
      figures.invariantsChecked += 1;
      if (ok) figures.invariantsHeld += 1;
      else throw new Error(`invariant violated: ${what}${detail === undefined ? '' : `: ${JSON.stringify(detail)}`}`);
    },
    note: (line) => void figures.notes.push(line),
    save() {
      mkdirSync(figuresDir(), { recursive: true });
      writeFileSync(join(figuresDir(), `${suite}.json`), JSON.stringify({ ...figures, at: new Date().toISOString() }, null, 2) + '\n');
    },
  };
}
