//! UCUM units, as far as laboratory results need them: a unit expression (`mg/dL`,
//! `10*3/uL`, `umol/L`, `mmol/L`, `%`, `{cells}/uL`, `g.L-1`) is read into a factor and a
//! dimension, so that a value in any unit of the same dimension converts to the unit a model
//! was trained on. Mass and amount of substance convert into each other through the analyte's
//! molar mass where one is known (creatinine mg/dL ↔ µmol/L). Temperatures (affine units) and
//! arbitrary units (`[IU]`, `U`) convert only to themselves, with prefixes.

/// Base dimensions: mass (g), length (m), time (s), amount (mol), equivalents (eq), enzyme
/// units (U), international units ([IU]), pressure in mm Hg (kept apart: clinical use never
/// mixes it with pascals).
const DIMENSIONS: usize = 8;
type Dimension = [i8; DIMENSIONS];
const MASS: usize = 0;
const AMOUNT: usize = 3;

/// A unit read from its UCUM expression: value in the unit × factor = value in base units.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Unit {
    factor: f64,
    dimension: Dimension,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    #[error("`{0}` is not a UCUM unit this service knows")]
    Unknown(String),
    #[error("`{from}` cannot be converted to `{to}`")]
    Incompatible { from: String, to: String },
}

/// (atom, factor to base units, dimension)
const ATOMS: &[(&str, f64, Dimension)] = &[
    ("g", 1.0, [1, 0, 0, 0, 0, 0, 0, 0]),
    ("m", 1.0, [0, 1, 0, 0, 0, 0, 0, 0]),
    ("L", 1e-3, [0, 3, 0, 0, 0, 0, 0, 0]),
    ("l", 1e-3, [0, 3, 0, 0, 0, 0, 0, 0]),
    ("s", 1.0, [0, 0, 1, 0, 0, 0, 0, 0]),
    ("min", 60.0, [0, 0, 1, 0, 0, 0, 0, 0]),
    ("h", 3600.0, [0, 0, 1, 0, 0, 0, 0, 0]),
    ("d", 86_400.0, [0, 0, 1, 0, 0, 0, 0, 0]),
    ("wk", 604_800.0, [0, 0, 1, 0, 0, 0, 0, 0]),
    ("mo", 2_629_746.0, [0, 0, 1, 0, 0, 0, 0, 0]),
    ("a", 31_557_600.0, [0, 0, 1, 0, 0, 0, 0, 0]),
    ("mol", 6.022_140_76e23, [0, 0, 0, 1, 0, 0, 0, 0]),
    ("eq", 6.022_140_76e23, [0, 0, 0, 0, 1, 0, 0, 0]),
    ("U", 1.0, [0, 0, 0, 0, 0, 1, 0, 0]),
    ("kat", 6.0e7, [0, 0, 0, 0, 0, 1, 0, 0]),
    ("[IU]", 1.0, [0, 0, 0, 0, 0, 0, 1, 0]),
    ("[iU]", 1.0, [0, 0, 0, 0, 0, 0, 1, 0]),
    ("mm[Hg]", 1.0, [0, 0, 0, 0, 0, 0, 0, 1]),
    ("[lb_av]", 453.592_37, [1, 0, 0, 0, 0, 0, 0, 0]),
    ("[oz_av]", 28.349_523_125, [1, 0, 0, 0, 0, 0, 0, 0]),
    ("[in_i]", 0.0254, [0, 1, 0, 0, 0, 0, 0, 0]),
    ("[ft_i]", 0.3048, [0, 1, 0, 0, 0, 0, 0, 0]),
    ("%", 0.01, [0; DIMENSIONS]),
    ("[ppm]", 1e-6, [0; DIMENSIONS]),
    ("[pH]", 1.0, [0; DIMENSIONS]),
];

/// UCUM's metric prefixes (case-sensitive form).
const PREFIXES: &[(&str, f64)] = &[
    ("da", 1e1),
    ("Y", 1e24),
    ("Z", 1e21),
    ("E", 1e18),
    ("P", 1e15),
    ("T", 1e12),
    ("G", 1e9),
    ("M", 1e6),
    ("k", 1e3),
    ("h", 1e2),
    ("d", 1e-1),
    ("c", 1e-2),
    ("m", 1e-3),
    ("u", 1e-6),
    ("n", 1e-9),
    ("p", 1e-12),
    ("f", 1e-15),
    ("a", 1e-18),
];

/// Atoms that take no prefix (arbitrary or non-metric units).
const UNPREFIXED: &[&str] = &[
    "min", "h", "d", "wk", "mo", "a", "%", "[ppm]", "[pH]", "mm[Hg]", "[lb_av]", "[oz_av]",
    "[in_i]", "[ft_i]",
];

impl Unit {
    /// Reads a UCUM expression. The empty unit and `1` are dimensionless.
    pub fn parse(expression: &str) -> Result<Unit, UnitError> {
        let unknown = || UnitError::Unknown(expression.to_owned());
        let text = expression.trim();
        let mut unit = Unit {
            factor: 1.0,
            dimension: [0; DIMENSIONS],
        };
        if text.is_empty() {
            return Ok(unit);
        }
        // Terms joined by `.` (product) and `/` (quotient); a leading `/` divides 1.
        let mut sign = 1i8;
        let mut term = String::new();
        let mut in_annotation = false;
        let mut terms: Vec<(i8, String)> = Vec::new();
        for c in text.chars() {
            match c {
                '{' => in_annotation = true,
                '}' if in_annotation => in_annotation = false,
                _ if in_annotation => {}
                '.' | '/' => {
                    terms.push((sign, std::mem::take(&mut term)));
                    sign = if c == '/' { -1 } else { 1 };
                }
                _ => term.push(c),
            }
        }
        if in_annotation {
            return Err(unknown());
        }
        terms.push((sign, term));
        for (sign, term) in terms {
            if term.is_empty() {
                // An annotation alone (`{cells}`) or a leading `/`: the unit 1.
                continue;
            }
            let (factor, dimension) = Self::term(&term).ok_or_else(unknown)?;
            unit.factor *= if sign > 0 { factor } else { 1.0 / factor };
            for (d, t) in unit.dimension.iter_mut().zip(dimension) {
                *d += sign * t;
            }
        }
        Ok(unit)
    }

    /// One term: a number (`10*3`, `10^6`, `1000`), or prefix + atom + optional exponent.
    fn term(term: &str) -> Option<(f64, Dimension)> {
        if let Some((base, exponent)) = term.split_once(['*', '^']) {
            let base: f64 = base.parse().ok()?;
            let exponent: i32 = exponent.parse().ok()?;
            return Some((base.powi(exponent), [0; DIMENSIONS]));
        }
        if let Ok(number) = term.parse::<u32>() {
            return Some((f64::from(number), [0; DIMENSIONS]));
        }
        // A trailing (signed) integer is the exponent: `m2`, `s-1`.
        let digits = term
            .char_indices()
            .rev()
            .take_while(|(_, c)| c.is_ascii_digit() || *c == '-' || *c == '+')
            .last()
            .map_or(term.len(), |(i, _)| i);
        let (symbol, exponent) = term.split_at(digits);
        let exponent: i8 = if exponent.is_empty() {
            1
        } else {
            exponent.parse().ok()?
        };
        let (factor, dimension) = Self::symbol(symbol)?;
        let mut scaled = dimension;
        for d in &mut scaled {
            *d *= exponent;
        }
        Some((factor.powi(i32::from(exponent)), scaled))
    }

    fn symbol(symbol: &str) -> Option<(f64, Dimension)> {
        if let Some((_, factor, dimension)) = ATOMS.iter().find(|(a, ..)| *a == symbol) {
            return Some((*factor, *dimension));
        }
        PREFIXES.iter().find_map(|(prefix, scale)| {
            let atom = symbol.strip_prefix(prefix)?;
            if UNPREFIXED.contains(&atom) {
                return None;
            }
            let (_, factor, dimension) = ATOMS.iter().find(|(a, ..)| *a == atom)?;
            Some((scale * factor, *dimension))
        })
    }
}

/// Converts `value` from unit `from` to unit `to`; `molar_mass` (g/mol) of the analyte allows
/// conversions between mass and amount of substance.
pub fn convert(
    value: f64,
    from: &str,
    to: &str,
    molar_mass: Option<f64>,
) -> Result<f64, UnitError> {
    let source = Unit::parse(from)?;
    let target = Unit::parse(to)?;
    let incompatible = || UnitError::Incompatible {
        from: from.to_owned(),
        to: to.to_owned(),
    };
    if source.dimension == target.dimension {
        return Ok(value * source.factor / target.factor);
    }
    // Mass ↔ amount: the dimensions differ by one gram against one mole (in the same place).
    let molar_mass = molar_mass.ok_or_else(incompatible)?;
    let mut difference = [0i8; DIMENSIONS];
    for (d, (s, t)) in difference
        .iter_mut()
        .zip(source.dimension.iter().zip(target.dimension))
    {
        *d = s - t;
    }
    let mut mass_to_amount = [0i8; DIMENSIONS];
    mass_to_amount[MASS] = 1;
    mass_to_amount[AMOUNT] = -1;
    let avogadro = 6.022_140_76e23;
    if difference == mass_to_amount {
        // source has grams where target has moles: grams ÷ (g/mol) → moles.
        Ok(value * source.factor / molar_mass * avogadro / target.factor)
    } else if difference.map(|d| -d) == mass_to_amount {
        Ok(value * source.factor / avogadro * molar_mass / target.factor)
    } else {
        Err(incompatible())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1e-12)
    }

    #[test]
    fn common_laboratory_units_convert() {
        let cases = [
            (13.5, "g/dL", "g/L", 135.0),
            (135.0, "g/L", "g/dL", 13.5),
            (6.8, "10*3/uL", "10*9/L", 6.8),
            (6800.0, "/uL", "10*9/L", 6.8),
            (6800.0, "{cells}/uL", "10*3/uL", 6.8),
            (250.0, "10*3/mm3", "10*9/L", 250.0),
            (30.0, "U/L", "kU/L", 0.03),
            (2.5, "ng/mL", "ug/L", 2.5),
            (45.0, "%", "1", 0.45),
            (1.0, "mmol/L", "umol/L", 1000.0),
            (4.0, "g.L-1", "mg/dL", 400.0),
            (155.0, "[lb_av]", "kg", 70.306_817_35),
            (2.5, "cm", "mm", 25.0),
        ];
        for (value, from, to, expected) in cases {
            let got = convert(value, from, to, None).unwrap();
            assert!(close(got, expected), "{value} {from} -> {to}: {got}");
        }
    }

    #[test]
    fn mass_and_amount_convert_through_the_molar_mass() {
        // Creatinine (113.12 g/mol): 1 mg/dL = 88.4 µmol/L.
        let umol = convert(1.0, "mg/dL", "umol/L", Some(113.12)).unwrap();
        assert!((umol - 88.4).abs() < 0.05, "{umol}");
        let back = convert(umol, "umol/L", "mg/dL", Some(113.12)).unwrap();
        assert!(close(back, 1.0));
        // Glucose (180.156 g/mol): 5.5 mmol/L ≈ 99 mg/dL.
        let mg = convert(5.5, "mmol/L", "mg/dL", Some(180.156)).unwrap();
        assert!((mg - 99.09).abs() < 0.01, "{mg}");
        // Without a molar mass it is refused, not guessed.
        assert!(matches!(
            convert(1.0, "mg/dL", "umol/L", None),
            Err(UnitError::Incompatible { .. })
        ));
    }

    #[test]
    fn what_cannot_be_read_or_converted_is_an_error() {
        assert!(matches!(
            Unit::parse("furlongs"),
            Err(UnitError::Unknown(_))
        ));
        assert!(matches!(Unit::parse("mg/{dL"), Err(UnitError::Unknown(_))));
        assert!(matches!(
            convert(1.0, "mg/dL", "U/L", Some(100.0)),
            Err(UnitError::Incompatible { .. })
        ));
        assert!(matches!(
            convert(1.0, "[IU]/L", "U/L", None),
            Err(UnitError::Incompatible { .. })
        ));
        // `mm` is a millimetre, `min` a minute: atoms are matched before prefixes.
        assert!(close(convert(1.0, "min", "s", None).unwrap(), 60.0));
        assert!(close(convert(10.0, "mm", "cm", None).unwrap(), 1.0));
        assert!(close(convert(1.0, "mm[Hg]", "mm[Hg]", None).unwrap(), 1.0));
    }
}
