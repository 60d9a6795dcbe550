/**
 * Our own two cats, drawn for this CLI (`pipeline --george`, `pipeline --pascal`). Sentient's
 * pipeline has the same two flags; the pictures here are original.
 */

export const GEORGE = String.raw`
        /\_____/\
       /  o   o  \        George
      ( ==  ^  == )       keeper of the enclave door,
       )         (        checks every key twice.
      (           )
     ( (  )   (  ) )
    (__(__)___(__)__)___~
`

export const PASCAL = String.raw`
      |\      _,,,---,,_
      /,'.-'' -.  ;-;;,_      Pascal
     |,4-  ) )-,_..;\ (  '-'  asleep on a warm vsock,
    '---''(_/--'  '-'\_)      dreaming of 128+N.
`
