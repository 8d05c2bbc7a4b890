/**
 * The generated factory's definition: its route of stations, their equipment, defect codes
 * and hotspots, its products, and the rates the generator draws splits, merges and defects
 * with. generate.ts tells the story with them.
 */
/** The route, in order. TMTT (test, mark, tape) is the late station where defects are found. */
export const MES_ROUTE = [
  "DIE_ATTACH",
  "WIRE_BOND",
  "MOLD",
  "TRIM_FORM",
  "PLATING",
  "TMTT",
  "PACK",
] as const;
export type MesStation = (typeof MES_ROUTE)[number];

export interface DefectCode {
  code: string;
  /** The step (index into the station's steps) that records it. */
  step: number;
  /** Defective fraction of the units, when the code occurs on a container at all. */
  rate: number;
}

export interface StationDef {
  name: MesStation;
  code: string;
  units: number;
  steps: readonly string[];
  /** Typical processing time of a 10K-unit container, hours. */
  hours: number;
  defects: readonly DefectCode[];
}

export const STATIONS: readonly StationDef[] = [
  {
    name: "DIE_ATTACH",
    code: "DA",
    units: 10,
    steps: ["DISPENSE", "BOND", "CURE"],
    hours: 3,
    defects: [
      { code: "DIE_CRACK", step: 1, rate: 0.0001 },
      { code: "EPOXY_VOID", step: 2, rate: 0.00015 },
      { code: "DIE_TILT", step: 1, rate: 0.0001 },
    ],
  },
  {
    name: "WIRE_BOND",
    code: "WB",
    units: 24,
    steps: ["BOND", "PULL_TEST"],
    hours: 6,
    defects: [
      { code: "NSOP", step: 0, rate: 0.00015 },
      { code: "BALL_LIFT", step: 1, rate: 0.0001 },
      { code: "WIRE_SAG", step: 0, rate: 0.0001 },
    ],
  },
  {
    name: "MOLD",
    code: "MD",
    units: 8,
    steps: ["MOLD", "PMC"],
    hours: 2.5,
    defects: [
      { code: "INCOMPLETE_FILL", step: 0, rate: 0.0001 },
      { code: "WIRE_SWEEP", step: 0, rate: 0.00015 },
    ],
  },
  {
    name: "TRIM_FORM",
    code: "TF",
    units: 8,
    steps: ["TRIM_FORM"],
    hours: 1.5,
    defects: [
      { code: "LEAD_BENT", step: 0, rate: 0.00015 },
      { code: "BURR", step: 0, rate: 0.0001 },
    ],
  },
  {
    name: "PLATING",
    code: "PL",
    units: 5,
    steps: ["DEFLASH", "PLATE"],
    hours: 4,
    defects: [
      { code: "PLATING_THIN", step: 1, rate: 0.0001 },
      { code: "DISCOLOR", step: 1, rate: 0.0001 },
    ],
  },
  {
    name: "TMTT",
    code: "TM",
    units: 12,
    steps: ["TEST", "MARK", "VISUAL"],
    hours: 5,
    defects: [
      { code: "OS_OPEN", step: 0, rate: 0.0004 },
      { code: "OS_SHORT", step: 0, rate: 0.0003 },
      { code: "IR_LEAK", step: 0, rate: 0.0005 },
      { code: "VF_FAIL", step: 0, rate: 0.0004 },
      { code: "VBR_FAIL", step: 0, rate: 0.0003 },
      { code: "TRR_FAIL", step: 0, rate: 0.0002 },
      { code: "MARK_ILLEGIBLE", step: 1, rate: 0.0002 },
      { code: "PKG_CRACK", step: 2, rate: 0.0002 },
      { code: "CHIPPING", step: 2, rate: 0.0003 },
      { code: "LEAD_COPLANARITY", step: 2, rate: 0.0003 },
    ],
  },
  { name: "PACK", code: "PK", units: 6, steps: ["TAPE_REEL"], hours: 1.5, defects: [] },
];

export const TMTT = MES_ROUTE.indexOf("TMTT");
export const PLATING = MES_ROUTE.indexOf("PLATING");

/** The equipment units of each station: `WB-01` .. `WB-24`. */
export const MES_EQUIPMENT: { readonly [S in MesStation]: readonly string[] } = Object.fromEntries(
  STATIONS.map((s) => [
    s.name,
    Array.from({ length: s.units }, (_, i) => `${s.code}-${String(i + 1).padStart(2, "0")}`),
  ]),
) as { [S in MesStation]: string[] };

/**
 * The three upstream units that cause most defects found at TMTT (extra defective fraction of
 * the units that went through them, per TMTT reason code).
 */
export const MES_HOTSPOTS: readonly {
  workcenter: MesStation;
  equipment: string;
  effects: Readonly<Record<string, number>>;
}[] = [
  { workcenter: "WIRE_BOND", equipment: "WB-07", effects: { OS_OPEN: 0.035, OS_SHORT: 0.015 } },
  { workcenter: "MOLD", equipment: "MD-03", effects: { IR_LEAK: 0.01, PKG_CRACK: 0.006 } },
  { workcenter: "DIE_ATTACH", equipment: "DA-02", effects: { VF_FAIL: 0.015 } },
];

export const PRODUCTS = [
  { name: "SOT23", weight: 0.35, qty: 12_000, plating: true },
  { name: "SOD123", weight: 0.15, qty: 10_000, plating: true },
  { name: "SOT223", weight: 0.1, qty: 4_000, plating: true },
  { name: "DFN2020", weight: 0.25, qty: 8_000, plating: false },
  { name: "SOD123F", weight: 0.15, qty: 10_000, plating: false },
] as const;
export type Product = (typeof PRODUCTS)[number];

/** Lots at scale 1, and the first day a lot starts. */
export const MES_LOTS_AT_SCALE_1 = 70_000;
export const START = Date.parse("2025-09-01T00:00:00Z") / 1000;
export const MAX_DAYS = 150;
/** Split-off probability per container after each station (index into the route). */
export const SPLIT_AFTER = [0.02, 0.06, 0.06, 0.05, 0, 0.38, 0];
/** Merge probability per container after TRIM_FORM and PLATING (needs a partner nearby). */
export const MERGE_AFTER = [0, 0, 0, 0.07, 0.07, 0, 0];
export const MERGE_WINDOW_S = 12 * 3600;
/** Chance that a reason code occurs on a container at a station at all. */
export const OCCURS_INLINE = 0.45;
export const OCCURS_TMTT = 0.8;

/** Rows at scale 1 per lot, all four tables together: for a progress estimate only. */
export const MES_ROWS_PER_LOT = 36.8;

/** Lots for a scale: at least one. */
export function mesLots(scale: number): number {
  return Math.max(1, Math.round(MES_LOTS_AT_SCALE_1 * scale));
}
