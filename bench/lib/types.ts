/** What a scenario reports and what it is given. */

/** One figure of one scenario: a measured value, the floor it is compared with, and the goal. */
export interface Figure {
  scenario: string;
  figure: string;
  value: number;
  unit: string;
  /** What the floor is (e.g. `split + JSON.parse`), or null when the figure has no floor. */
  floorName: string | null;
  floor: number | null;
  /** Fraction of the floor, higher is better (value/floor for rates, floor/value for times); null without a floor. */
  ratio: number | null;
  /** The goal as text (e.g. `ratio ≥ 0.6`, `< 250 ms`), or null. */
  goal: string | null;
  /** Whether the goal is met; null when there is no goal. */
  met: boolean | null;
  note?: string;
}

/** What every scenario gets. */
export interface ScenarioContext {
  quick: boolean;
  /** Scratch directory of this run (removed at the end). */
  workDir: string;
  /** Cache of generated inputs, kept between runs (keyed by their parameters). */
  cacheDir: string;
  /** Progress line on stderr. */
  log(message: string): void;
}

/** A scenario module. */
export interface Scenario {
  name: string;
  title: string;
  run(ctx: ScenarioContext): Promise<Figure[]>;
}

/** Helpers to build figures with consistent ratio/goal semantics. */
export const figure = {
  /** A rate (higher is better) against a rate floor: ratio = value / floor. */
  rate(scenario: string, name: string, value: number, unit: string, floorName: string, floor: number, minRatio: number | null, note?: string): Figure {
    const ratio = floor > 0 ? value / floor : null;
    return {
      scenario,
      figure: name,
      value,
      unit,
      floorName,
      floor,
      ratio,
      goal: minRatio === null ? null : `ratio ≥ ${minRatio}`,
      met: minRatio === null || ratio === null ? null : ratio >= minRatio,
      ...(note ? { note } : {}),
    };
  },
  /** A time or size (lower is better) against a floor: ratio = floor / value; goal is an absolute maximum. */
  cost(scenario: string, name: string, value: number, unit: string, floorName: string | null, floor: number | null, max: number | null, note?: string): Figure {
    const ratio = floor !== null && value > 0 ? floor / value : null;
    return {
      scenario,
      figure: name,
      value,
      unit,
      floorName,
      floor,
      ratio,
      goal: max === null ? null : `< ${max} ${unit}`,
      met: max === null ? null : value < max,
      ...(note ? { note } : {}),
    };
  },
  /** A plain value with no floor and no goal (context). */
  info(scenario: string, name: string, value: number, unit: string, note?: string): Figure {
    return { scenario, figure: name, value, unit, floorName: null, floor: null, ratio: null, goal: null, met: null, ...(note ? { note } : {}) };
  },
  /** Flatness of a curve: value at the largest size over value at the smallest (for rates), goal minimum. */
  flat(scenario: string, name: string, ratio: number, minRatio: number | null, floorName: string, note?: string): Figure {
    return {
      scenario,
      figure: name,
      value: ratio,
      unit: 'ratio',
      floorName,
      floor: 1,
      ratio,
      goal: minRatio === null ? null : `ratio ≥ ${minRatio}`,
      met: minRatio === null ? null : ratio >= minRatio,
      ...(note ? { note } : {}),
    };
  },
};
