import { z } from "zod";

// Field schemas shared by the components' spec schemas (each component file exports its own
// schema; src/components/registry.ts assembles the union that src/chain/spec.ts validates with).

export const positiveInt = z.number().int().positive();
export const nonNegativeInt = z.number().int().nonnegative();
/** A size or stride: one positive integer for both axes, or `[height, width]`. */
export const pair = z.union([positiveInt, z.tuple([positiveInt, positiveInt])]);
/** Zero-padding: one non-negative integer for both axes, or `[height, width]`. */
export const paddingPair = z.union([nonNegativeInt, z.tuple([nonNegativeInt, nonNegativeInt])]);
/** Initialization scheme of the bi-affine components (see init.ts). */
export const initScheme = z.enum(["he", "lecun", "torch"]);
