/** A labelled date input: the range fields of the stats and trace forms. */
export function DateField(props: {
  id: string;
  label: string;
  value: string;
  onChange: (value: string) => void;
}) {
  return (
    <>
      <label for={props.id}>{props.label}</label>
      <input
        id={props.id}
        type="date"
        value={props.value}
        onInput={(e) => props.onChange((e.currentTarget as HTMLInputElement).value)}
      />
    </>
  );
}
